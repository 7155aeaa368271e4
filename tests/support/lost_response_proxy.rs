//! A TCP proxy that lets each request reach the server, waits for the
//! server's answer, then closes the client's connection without passing the
//! answer on: the call took effect and the caller cannot know it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts the proxy in front of `upstream`; returns its address.
pub async fn spawn(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(swallow_response(client, upstream));
        }
    });
    address
}

async fn swallow_response(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, _to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let mut request = [0u8; 8192];
    let mut response = [0u8; 1];
    loop {
        tokio::select! {
            read = from_client.read(&mut request) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if to_server.write_all(&request[..n]).await.is_err() { return },
            },
            // The server answered: the request took effect. Drop both sides.
            _ = from_server.read(&mut response) => return,
        }
    }
}
