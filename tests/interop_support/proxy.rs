//! A TCP proxy between one real agent and Palisade that can corrupt exactly
//! one signed frame.
//!
//! It passes the HTTP upgrade through untouched, then forwards WebSocket
//! frames whole. Once armed, it takes the next client→server data frame
//! whose payload holds `"hmac":"`, unmasks it (client frames are masked,
//! RFC 6455 §5.3), changes one hex digit of the MAC, re-masks it with the
//! same key and forwards it. It also records the close codes the server
//! sends, so the test can see the 4403 on the wire.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct ProxyState {
    armed: AtomicBool,
    /// The frame type of the frame we corrupted, once we did.
    pub flipped: Mutex<Option<String>>,
    pub connections: AtomicUsize,
    /// Close codes sent by the server, in order.
    pub server_closes: Mutex<Vec<u16>>,
    /// Set if the server accepted a WebSocket extension (compressed frames
    /// would hide the MAC from us).
    pub extension_negotiated: AtomicBool,
}

pub struct FlipProxy {
    pub addr: SocketAddr,
    pub state: Arc<ProxyState>,
    listener: Option<TcpListener>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FlipProxy {
    /// Bind first (Palisade must know our Host before it starts).
    pub async fn bind() -> FlipProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        FlipProxy { addr, state: Arc::default(), listener: Some(listener), task: None }
    }

    pub fn start(&mut self, upstream: SocketAddr) {
        let listener = self.listener.take().expect("start once");
        let state = self.state.clone();
        self.task = Some(tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                state.connections.fetch_add(1, Ordering::SeqCst);
                let st = state.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = relay(client, server, st).await;
                    }
                });
            }
        }));
    }

    pub fn arm(&self) {
        self.state.armed.store(true, Ordering::SeqCst);
    }

    pub fn flipped(&self) -> Option<String> {
        self.state.flipped.lock().unwrap().clone()
    }

    pub fn server_closes(&self) -> Vec<u16> {
        self.state.server_closes.lock().unwrap().clone()
    }
}

impl Drop for FlipProxy {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Read an HTTP head (up to the blank line) and return it with any bytes
/// that came after it.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn relay(mut client: TcpStream, mut server: TcpStream, st: Arc<ProxyState>) -> std::io::Result<()> {
    let (request, early) = read_head(&mut client).await?;
    server.write_all(&request).await?;
    let (response, after) = read_head(&mut server).await?;
    let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
    if head.contains("\r\nsec-websocket-extensions:") {
        st.extension_negotiated.store(true, Ordering::SeqCst);
    }
    client.write_all(&response).await?;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, early, st.clone(), true);
    let down = pump(sr, cw, after, st, false);
    let _ = tokio::join!(up, down);
    Ok(())
}

/// Length of the first complete frame in `buf`, if there is one.
fn frame_len(buf: &[u8]) -> Option<(usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let (len, mut header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if masked {
        header += 4;
    }
    (buf.len() >= header + len).then_some((header, header + len))
}

/// Flip one hex digit of the MAC in this masked client frame, in place.
/// Returns the frame's `type` when it did.
fn corrupt(frame: &mut [u8], header: usize) -> Option<String> {
    let opcode = frame[0] & 0x0f;
    let (fin, rsv1, masked) = (frame[0] & 0x80 != 0, frame[0] & 0x40 != 0, frame[1] & 0x80 != 0);
    if !fin || rsv1 || !masked || !(opcode == 1 || opcode == 2) {
        return None;
    }
    let key: [u8; 4] = frame[header - 4..header].try_into().ok()?;
    let payload = &mut frame[header..];
    payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= key[i % 4]);
    let text = String::from_utf8_lossy(payload).into_owned();
    let marker = "\"hmac\":\"";
    let found = text.find(marker).map(|at| at + marker.len()).filter(|&i| payload[i].is_ascii_hexdigit());
    if let Some(i) = found {
        payload[i] = if payload[i] == b'0' { b'1' } else { b'0' };
    }
    payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= key[i % 4]);
    let kind = text.split("\"type\":\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("?");
    found.map(|_| kind.to_string())
}

async fn pump<R, W>(mut r: R, mut w: W, mut buf: Vec<u8>, st: Arc<ProxyState>, from_client: bool) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some((header, total)) = frame_len(&buf) {
            let mut frame: Vec<u8> = buf.drain(..total).collect();
            if from_client && st.armed.load(Ordering::SeqCst) {
                if let Some(kind) = corrupt(&mut frame, header) {
                    st.armed.store(false, Ordering::SeqCst);
                    *st.flipped.lock().unwrap() = Some(kind);
                }
            }
            if !from_client && frame[0] & 0x0f == 8 && frame.len() >= header + 2 {
                let code = u16::from_be_bytes([frame[header], frame[header + 1]]);
                st.server_closes.lock().unwrap().push(code);
            }
            w.write_all(&frame).await?;
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_one_mac_digit_of_a_masked_frame() {
        let text = br#"{"v":2,"id":"hb_1","seq":1,"hmac":"0abc","type":"heartbeat","payload":{}}"#;
        let key = [0x11u8, 0x22, 0x33, 0x44];
        let mut frame = vec![0x82, 0x80 | text.len() as u8];
        frame.extend_from_slice(&key);
        frame.extend(text.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        let (header, total) = frame_len(&frame).unwrap();
        assert_eq!((header, total), (6, frame.len()));
        assert_eq!(corrupt(&mut frame, header).as_deref(), Some("heartbeat"));
        let back: Vec<u8> = frame[header..].iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
        let want = String::from_utf8_lossy(text).replace("\"hmac\":\"0abc\"", "\"hmac\":\"1abc\"");
        assert_eq!(String::from_utf8(back).unwrap(), want);
        // A frame without a MAC (or a control frame) is left alone.
        let mut close = vec![0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2];
        assert_eq!(corrupt(&mut close, 6), None);
    }
}
