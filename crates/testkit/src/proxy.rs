//! A TCP proxy a test controls: between the app and Postgres (to make the database unreachable),
//! between a replica and its primary (to hold replication back), or in front of a Redis primary
//! (an endpoint that moves to another node, as a managed service's DNS name does).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// What the proxy does with bytes and connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Passes bytes both ways.
    Forward,
    /// Keeps connections open but passes nothing until `forward` (bytes wait in the proxy).
    Hold,
    /// Closes every connection, and each new one as soon as it is accepted.
    Reject,
}

pub struct TcpProxy {
    pub port: u16,
    mode: watch::Sender<Mode>,
    upstream: Arc<Mutex<SocketAddr>>,
    /// Bumped to close every connection open now.
    generation: watch::Sender<u64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    /// A proxy on a free loopback port to `upstream`, forwarding.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Forward);
        let (generation, _) = watch::channel(0u64);
        let upstream = Arc::new(Mutex::new(upstream));
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn({
            let mode = mode.subscribe();
            let generation = generation.subscribe();
            let upstream = upstream.clone();
            move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime")
                    .block_on(async move {
                        let listener = TcpListener::from_std(listener).expect("tokio listener");
                        tokio::select! {
                            () = accept_loop(listener, mode, generation, upstream) => {}
                            _ = shutdown_rx => {}
                        }
                    })
            }
        });
        Self {
            port,
            mode,
            upstream,
            generation,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Passes bytes again, the held ones first.
    pub fn forward(&self) {
        self.mode.send_replace(Mode::Forward);
    }

    /// Passes nothing, keeping connections open.
    pub fn hold(&self) {
        self.mode.send_replace(Mode::Hold);
    }

    /// Closes every connection and refuses new ones: the upstream is unreachable.
    pub fn reject(&self) {
        self.mode.send_replace(Mode::Reject);
        self.sever();
    }

    /// Sends new connections to `upstream` and closes the open ones, as a DNS name moving to
    /// another node (and the old node's connections dying) looks to a client.
    pub fn redirect(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
        self.sever();
    }

    fn sever(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    mode: watch::Receiver<Mode>,
    generation: watch::Receiver<u64>,
    upstream: Arc<Mutex<SocketAddr>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *mode.borrow() == Mode::Reject {
            drop(client);
            continue;
        }
        let target = *upstream.lock().unwrap();
        let (mode, mut generation) = (mode.clone(), generation.clone());
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            // As Redis does on its own sockets: without it, Nagle's algorithm holds a small
            // write (a replica's `REPLCONF ACK`) until the peer's delayed ACK, ~40 ms.
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            generation.mark_unchanged();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::select! {
                () = pipe(client_read, server_write, mode.clone()) => {}
                () = pipe(server_read, client_write, mode) => {}
                _ = generation.changed() => {}
            }
        });
    }
}

/// Copies `from` to `to`, waiting while the mode is `Hold` and stopping at `Reject`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = match mode.wait_for(|m| *m != Mode::Hold).await {
            Ok(current) => *current,
            Err(_) => return,
        };
        if current == Mode::Reject {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
