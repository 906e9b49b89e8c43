//! Opening an agent session: TCP from a chosen loopback source address, the
//! WebSocket upgrade with `Authorization: Bearer` (§1.2), the unsigned
//! `hello`, and the `hello_ack` that must be the first inbound message
//! within 10 s (§1.8).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use palisade::security::frame::{parse_hello_ack, HelloAck};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// The agent waits this long for `hello_ack` (§1.8).
pub const HELLO_ACK_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The real client accepts inbound messages up to 1 MiB (§1.2).
const MAX_INBOUND: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("tcp connect: {0}")]
    Connect(std::io::Error),
    #[error("tcp connect timed out")]
    ConnectTimeout,
    #[error("upgrade refused with HTTP {0}")]
    Upgrade(u16),
    #[error("websocket: {0}")]
    Ws(WsError),
    #[error("no hello_ack within 10 s")]
    HelloTimeout,
    #[error("closed during handshake with {0}")]
    Closed(u16),
    #[error("first frame is not a valid hello_ack")]
    BadHelloAck,
}

impl DialError {
    /// A short kind for the error table.
    pub fn kind(&self) -> String {
        match self {
            DialError::Connect(e) => format!("connect_{:?}", e.kind()).to_lowercase(),
            DialError::ConnectTimeout => "connect_timeout".into(),
            DialError::Upgrade(code) => format!("upgrade_http_{code}"),
            DialError::Ws(_) => "upgrade_ws_error".into(),
            DialError::HelloTimeout => "hello_ack_timeout".into(),
            DialError::Closed(code) => format!("handshake_close_{code}"),
            DialError::BadHelloAck => "bad_hello_ack".into(),
        }
    }
}

async fn tcp(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, DialError> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(DialError::Connect)?;
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0)).map_err(DialError::Connect)?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| DialError::ConnectTimeout)?
        .map_err(DialError::Connect)?;
    // Frames are small and latency is what we measure.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// TCP connect plus WebSocket upgrade.
pub async fn connect(ws_url: &str, addr: SocketAddr, source: Option<IpAddr>, token: &str) -> Result<Ws, DialError> {
    let stream = tcp(addr, source).await?;
    let mut request = ws_url.into_client_request().map_err(DialError::Ws)?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| DialError::BadHelloAck)?;
    request.headers_mut().insert("authorization", bearer);
    let config = WebSocketConfig::default().max_message_size(Some(MAX_INBOUND)).max_frame_size(Some(MAX_INBOUND));
    match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => Err(DialError::Upgrade(resp.status().as_u16())),
        Err(e) => Err(DialError::Ws(e)),
    }
}

/// Sends `hello` and waits for `hello_ack`.
pub async fn handshake(ws: &mut Ws, hello: Vec<u8>) -> Result<HelloAck, DialError> {
    ws.send(Message::Binary(hello.into())).await.map_err(DialError::Ws)?;
    let first = tokio::time::timeout(HELLO_ACK_TIMEOUT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
                Some(Ok(Message::Text(t))) => return Ok(t.as_bytes().to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(DialError::Closed(frame.map_or(1005, |f| u16::from(f.code))));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(DialError::Ws(e)),
                None => return Err(DialError::Closed(1006)),
            }
        }
    })
    .await
    .map_err(|_| DialError::HelloTimeout)??;
    parse_hello_ack(&first).map_err(|_| DialError::BadHelloAck)
}
