//! The few etcd 3 calls an election needs, through etcd's JSON gateway
//! (`POST /v3/...`, keys and values in base64), over plain HTTP/1.0 so
//! that each answer ends where its connection does. No gRPC stack and no
//! async runtime: a lease, a create-if-absent transaction, a range.
//! [`answer`] reads what comes back.

mod answer;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{Value, json};

use crate::base64;
pub use answer::{Created, Kv};

/// How long one etcd call may take before the next endpoint is tried.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// An answer larger than this is not etcd's (ours are a few kilobytes).
const MAX_ANSWER: u64 = 4 << 20;

#[derive(Debug)]
pub enum EtcdError {
    /// No endpoint answered.
    Unreachable { endpoints: String, last: String },
    /// An endpoint answered something that is not the JSON asked for.
    Answer { endpoint: String, what: String },
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::Unreachable { endpoints, last } => write!(
                f,
                "no etcd endpoint of {endpoints} answered ({last}); is etcd running? see --etcd"
            ),
            EtcdError::Answer { endpoint, what } => {
                write!(f, "etcd at {endpoint} answered oddly: {what}")
            }
        }
    }
}

pub struct Etcd {
    /// HOST:PORT of each endpoint, in the order given.
    endpoints: Vec<String>,
    /// The endpoint that answered last, tried first.
    current: usize,
}

impl Etcd {
    /// `list` is comma-separated `http://HOST:PORT` (the scheme optional).
    pub fn new(list: &str) -> Result<Etcd, String> {
        let mut endpoints = Vec::new();
        for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let hostport = e.strip_prefix("http://").unwrap_or(e).trim_end_matches('/');
            if e.starts_with("https://") || hostport.contains('/') || !hostport.contains(':') {
                return Err(format!(
                    "--etcd {e:?}: give http://HOST:PORT (TLS is not spoken here)"
                ));
            }
            endpoints.push(hostport.to_string());
        }
        if endpoints.is_empty() {
            return Err("--etcd: give at least one http://HOST:PORT".to_string());
        }
        Ok(Etcd {
            endpoints,
            current: 0,
        })
    }

    /// One call, on the endpoint that answered last, then on each other.
    fn call(&mut self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let body = body.to_string();
        let mut last = String::new();
        for i in 0..self.endpoints.len() {
            let at = (self.current + i) % self.endpoints.len();
            let endpoint = &self.endpoints[at];
            match post(endpoint, path, &body) {
                Ok((200, text)) => {
                    self.current = at;
                    return serde_json::from_str(&text).map_err(|e| EtcdError::Answer {
                        endpoint: endpoint.clone(),
                        what: format!("{path}: {e}"),
                    });
                }
                Ok((status, text)) => last = format!("{endpoint}{path}: HTTP {status} {text}"),
                Err(e) => last = format!("{endpoint}: {e}"),
            }
        }
        Err(EtcdError::Unreachable {
            endpoints: self.endpoints.join(","),
            last,
        })
    }

    /// A new lease of `ttl` seconds: its id.
    pub fn grant(&mut self, ttl: u64) -> Result<i64, EtcdError> {
        let v = self.call("/v3/lease/grant", json!({ "TTL": ttl }))?;
        answer::granted(&v).ok_or_else(|| self.odd("lease/grant gave no ID"))
    }

    /// Renews a lease: false when it has expired already.
    pub fn keepalive(&mut self, lease: i64) -> Result<bool, EtcdError> {
        let v = self.call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))?;
        Ok(answer::kept_alive(&v))
    }

    /// Ends a lease now, and with it every key it holds.
    pub fn revoke(&mut self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))?;
        Ok(())
    }

    /// Puts `key` only if it does not exist.
    pub fn create(&mut self, key: &str, value: &str, lease: i64) -> Result<Created, EtcdError> {
        let k = base64::encode(key.as_bytes());
        let v = self.call(
            "/v3/kv/txn",
            json!({
                "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                "success": [{"request_put": {"key": k, "value": base64::encode(value.as_bytes()), "lease": lease.to_string()}}],
            }),
        )?;
        answer::created(&v).ok_or_else(|| self.odd("txn: succeeded, yet no revision"))
    }

    /// Puts `key` under `lease`.
    pub fn put(&mut self, key: &str, value: &str, lease: i64) -> Result<(), EtcdError> {
        let body = json!({"key": base64::encode(key.as_bytes()), "value": base64::encode(value.as_bytes()), "lease": lease.to_string()});
        self.call("/v3/kv/put", body)?;
        Ok(())
    }

    /// The keys that start with `prefix`, or equal it when `prefix` is
    /// a whole key and `whole` is set; and the store's revision then.
    pub fn range(&mut self, prefix: &str, whole: bool) -> Result<(Vec<Kv>, u64), EtcdError> {
        let mut body = json!({ "key": base64::encode(prefix.as_bytes()) });
        if !whole {
            body["range_end"] = Value::String(base64::encode(&prefix_end(prefix.as_bytes())));
        }
        let v = self.call("/v3/kv/range", body)?;
        answer::range(&v).ok_or_else(|| self.odd("range: no revision"))
    }

    fn odd(&self, what: &str) -> EtcdError {
        EtcdError::Answer {
            endpoint: self.endpoints[self.current].clone(),
            what: what.to_string(),
        }
    }
}

/// The key just past every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// One POST; the status and the body. HTTP/1.0, so the body ends with
/// the connection (etcd's keepalive would otherwise stream).
fn post(endpoint: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
    let addr = (endpoint.to_socket_addrs()?)
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, CALL_TIMEOUT)?;
    s.set_read_timeout(Some(CALL_TIMEOUT))?;
    s.set_write_timeout(Some(CALL_TIMEOUT))?;
    let req = format!(
        "POST {path} HTTP/1.0\r\nHost: {endpoint}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut raw)?;
    let (status, body) = answer::http(&raw)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_just_past_its_keys() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }
}
