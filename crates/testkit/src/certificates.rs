//! Certificates for a test's TLS Redis, made by `openssl` in a directory of the test's own: a
//! certificate authority, a server certificate it signed for 127.0.0.1 and localhost, a client
//! certificate for mutual TLS, and a second authority that signed none of them (to show that a
//! client trusting the wrong authority refuses the server).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{ensure, Context};

pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    pub fn generate() -> Self {
        Self::try_generate()
            .expect("openssl makes the test certificates (scripts/setup installs it)")
    }

    pub fn try_generate() -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("shopnow-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let certificates = Self { dir };
        certificates.authority("ca", "shopnow test CA")?;
        certificates.authority("other-ca", "an unrelated CA")?;
        certificates.signed(
            "server",
            "127.0.0.1",
            // Replicas and cluster peers present the server's certificate as clients too.
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth",
        )?;
        certificates.signed("client", "shopnow", "extendedKeyUsage=clientAuth")?;
        Ok(certificates)
    }

    /// The authority that signed the server's and the client's certificates (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// An authority that signed neither.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.join("client.crt")
    }

    pub fn client_key_file(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// The certificates a Rust client presents and trusts: the test CA and the client pair.
    pub fn redis_client_certificates(&self) -> redis::TlsCertificates {
        let read = |path: PathBuf| std::fs::read(path).expect("test certificate is readable");
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read(self.client_cert_file()),
                client_key: read(self.client_key_file()),
            }),
            root_cert: Some(read(self.ca_file())),
        }
    }

    /// `redis-server` arguments that serve TLS only, on `port`, with these certificates, and
    /// use TLS for replication and the cluster bus too. Clients may present a certificate (it is
    /// checked when they do) or not.
    pub fn redis_server_args(&self, port: u16) -> Vec<String> {
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(self.server_cert_file()),
            "--tls-key-file".into(),
            path(self.server_key_file()),
            "--tls-ca-cert-file".into(),
            path(self.ca_file()),
            "--tls-auth-clients".into(),
            "optional".into(),
            "--tls-replication".into(),
            "yes".into(),
            "--tls-cluster".into(),
            "yes".into(),
        ]
    }

    /// `redis-cli` arguments to reach a server started with `redis_server_args`.
    pub fn redis_cli_args(&self) -> Vec<String> {
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        vec![
            "--tls".into(),
            "--cacert".into(),
            path(self.ca_file()),
            "--cert".into(),
            path(self.client_cert_file()),
            "--key".into(),
            path(self.client_key_file()),
        ]
    }

    /// A self-signed authority `name`.crt / `name`.key.
    fn authority(&self, name: &str, subject: &str) -> anyhow::Result<()> {
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={subject}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
        )
    }

    /// A key and a certificate `name`.crt signed by `ca`, with `extensions` (openssl's
    /// extension-file syntax, one per line).
    fn signed(&self, name: &str, common_name: &str, extensions: &str) -> anyhow::Result<()> {
        let extension_file = format!("{name}.ext");
        std::fs::write(self.dir.join(&extension_file), extensions)?;
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={common_name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        )?;
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extension_file,
                "-out",
                &format!("{name}.crt"),
            ],
        )
    }
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl")?;
    ensure!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
