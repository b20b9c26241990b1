//! The few etcd 3 calls an election needs, through etcd's JSON gateway
//! (`POST /v3/...`, keys and values in base64), over plain HTTP/1.0 so
//! that each answer ends where its connection does. No gRPC stack and no
//! async runtime: a lease, a create-if-absent transaction, a range.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::{Value, json};

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

/// A key as read: its value, the revision that created it (an election's
/// epoch), and the lease it lives by (0 if none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_revision: u64,
    /// The revision that last wrote it.
    pub mod_revision: u64,
    pub lease: i64,
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
        number(&v["ID"]).ok_or_else(|| self.odd("lease/grant gave no ID"))
    }

    /// Renews a lease: false when it has expired already.
    pub fn keepalive(&mut self, lease: i64) -> Result<bool, EtcdError> {
        let v = self.call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))?;
        // The TTL left; etcd leaves the field out when it is 0 (expired).
        Ok(number(&v["result"]["TTL"]).unwrap_or(0) > 0)
    }

    /// Ends a lease now, and with it every key it holds.
    pub fn revoke(&mut self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))?;
        Ok(())
    }

    /// Puts `key` only if it does not exist.
    pub fn create(&mut self, key: &str, value: &str, lease: i64) -> Result<Created, EtcdError> {
        let k = b64(key.as_bytes());
        let v = self.call(
            "/v3/kv/txn",
            json!({
                "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                "success": [{"request_put": {"key": k, "value": b64(value.as_bytes()), "lease": lease.to_string()}}],
            }),
        )?;
        if v["succeeded"].as_bool() == Some(true) {
            let rev =
                number(&v["header"]["revision"]).ok_or_else(|| self.odd("txn: no revision"))?;
            return Ok(Created::Made(rev as u64));
        }
        Ok(Created::Taken)
    }

    /// Puts `key` under `lease`.
    pub fn put(&mut self, key: &str, value: &str, lease: i64) -> Result<(), EtcdError> {
        let body = json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes()), "lease": lease.to_string()});
        self.call("/v3/kv/put", body)?;
        Ok(())
    }

    /// The keys that start with `prefix`, or equal it when `prefix` is
    /// a whole key and `whole` is set; and the store's revision then.
    pub fn range(&mut self, prefix: &str, whole: bool) -> Result<(Vec<Kv>, u64), EtcdError> {
        let mut body = json!({ "key": b64(prefix.as_bytes()) });
        if !whole {
            body["range_end"] = Value::String(b64(&prefix_end(prefix.as_bytes())));
        }
        let v = self.call("/v3/kv/range", body)?;
        let revision =
            number(&v["header"]["revision"]).ok_or_else(|| self.odd("range: no revision"))?;
        let kvs = (v["kvs"].as_array())
            .map(|a| a.iter().filter_map(kv).collect())
            .unwrap_or_default();
        Ok((kvs, revision as u64))
    }

    fn odd(&self, what: &str) -> EtcdError {
        EtcdError::Answer {
            endpoint: self.endpoints[self.current].clone(),
            what: what.to_string(),
        }
    }
}

pub enum Created {
    /// This call made the key, at this revision.
    Made(u64),
    /// Another holds it.
    Taken,
}

/// etcd's JSON gives 64-bit numbers as strings.
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn kv(v: &Value) -> Option<Kv> {
    let text = |f: &str| {
        let raw = unb64(v[f].as_str().unwrap_or(""))?;
        String::from_utf8(raw).ok()
    };
    Some(Kv {
        key: text("key")?,
        value: text("value")?,
        create_revision: number(&v["create_revision"])? as u64,
        mod_revision: number(&v["mod_revision"])? as u64,
        lease: number(&v["lease"]).unwrap_or(0),
    })
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
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let at = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(at)) => at,
        _ => return Err(bad("not an HTTP answer")),
    };
    let status = resp.code.ok_or_else(|| bad("no status"))?;
    Ok((status, String::from_utf8_lossy(&raw[at..]).into_owned()))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as etcd's gateway wants bytes.
pub fn b64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_the_standard() {
        assert_eq!(b64(b"x"), "eA==");
        assert_eq!(b64(b"sprout/leader"), "c3Byb3V0L2xlYWRlcg==");
        assert_eq!(b64(b"abc"), "YWJj");
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect();
            assert_eq!(unb64(&b64(&data)).as_deref(), Some(&data[..]));
        }
        assert_eq!(unb64("e!=="), None);
    }

    #[test]
    fn a_prefix_ends_just_past_its_keys() {
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }
}
