//! What the tests of the `tally` command share: a plain HTTP/1.1 client, and `tally serve`
//! processes that show their log when a test fails.

// Tests drive real processes and time.
#![allow(clippy::disallowed_methods, dead_code)]

/// One HTTP/1.1 request on a new connection: the status and the body.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: tally\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: {response:?}"));
    let (_, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, body.to_owned())
}

/// A `tally serve` process, stopped and its log shown if the test fails before it stops it.
pub struct Serving {
    pub child: std::process::Child,
    pub log_path: std::path::PathBuf,
}

impl Serving {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("tally serve's log:\n{}", self.log());
        }
    }
}
