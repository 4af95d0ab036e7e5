//! [`WithoutDetailedMetadata`]: a real OpenBao server as HashiCorp Vault
//! looks to a KV v2 client. Vault's KV v2 engine has no `detailed-metadata`
//! endpoint (OpenBao added it); Vault cannot run here (no package, no
//! network). So requests go through to the real server, with
//! `/detailed-metadata/` renamed to an endpoint no KV v2 engine has, and
//! the real engine gives its own answer for a path it does not know — the
//! answer Vault gives (404, no errors, the warning "Invalid path for a
//! versioned K/V secrets engine").
//!
//! One request per connection (`Connection: close` both ways), which
//! every HTTP/1.1 client handles; each request line is recorded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the KV engine is asked instead of `detailed-metadata`.
const RENAMED: &str = "/no-detailed-metadata/";

/// A proxy on 127.0.0.1 in front of a plain-HTTP server; stopped when dropped.
#[derive(Debug)]
pub struct WithoutDetailedMetadata {
    /// `http://127.0.0.1:PORT`, to use as the server's address.
    pub address: String,
    local: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl WithoutDetailedMetadata {
    /// Starts the proxy in front of `upstream` (`http://HOST:PORT`).
    #[track_caller]
    pub fn start(upstream: &str) -> WithoutDetailedMetadata {
        let upstream: SocketAddr = upstream
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("not a plain-HTTP address: {upstream}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
        let local = listener.local_addr().expect("the bound address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    // A client that goes away mid-request is its own failure.
                    let _ = forward(client, upstream, &log);
                });
            }
        });
        WithoutDetailedMetadata {
            address: format!("http://{local}"),
            local,
            requests,
            stop,
        }
    }

    /// The request lines seen so far (`GET /v1/secret/metadata/a/?list=true`),
    /// with the path as the client sent it, and then forgets them.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().expect("not poisoned"))
    }
}

impl Drop for WithoutDetailedMetadata {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so it sees `stop`.
        let _ = TcpStream::connect(self.local);
    }
}

/// Reads one request from `client`, sends it on to `upstream` with the
/// endpoint renamed, and copies the answer back.
fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let request_line = line.trim_end().to_owned();
    let mut head: Vec<String> = Vec::new();
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let name = header.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = header[name.len() + 1..].trim().parse().unwrap_or(0);
        }
        if !name.eq_ignore_ascii_case("connection") {
            head.push(header.to_owned());
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    log.lock().expect("not poisoned").push(request_line.clone());
    let renamed = request_line.replacen("/detailed-metadata/", RENAMED, 1);
    let mut server = TcpStream::connect(upstream)?;
    let mut request = format!("{renamed}\r\n");
    for header in head {
        request.push_str(&header);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    server.write_all(request.as_bytes())?;
    server.write_all(&body)?;
    // Asked to close, the server says `Connection: close` and ends the
    // answer with the connection: the client reads it to the end.
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    let mut client = client;
    client.write_all(&answer)?;
    client.flush()
}
