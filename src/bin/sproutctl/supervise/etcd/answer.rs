//! What etcd's answers say: an HTTP answer split into its status and
//! body, and each call's JSON read into the few fields an election uses.
//! Pure, and self-contained but for `crate::base64`, so that the fuzz
//! crate can include it: whatever an endpoint sends, these give None or
//! an error, never a panic and never a number etcd did not send.

use serde_json::Value;

use crate::base64;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call made the key, at this revision.
    Made(u64),
    /// Another holds it.
    Taken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotHttp {
    /// The head did not parse, or ended before its blank line.
    Head,
    /// A head with no status code.
    NoStatus,
}

impl std::fmt::Display for NotHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotHttp::Head => "not an HTTP answer",
            NotHttp::NoStatus => "an HTTP answer with no status",
        })
    }
}

/// An HTTP/1.0 answer read to its end: the status and the body.
pub fn http(raw: &[u8]) -> Result<(u16, &[u8]), NotHttp> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let at = match resp.parse(raw) {
        Ok(httparse::Status::Complete(at)) => at,
        _ => return Err(NotHttp::Head),
    };
    let status = resp.code.ok_or(NotHttp::NoStatus)?;
    Ok((status, &raw[at..]))
}

/// lease/grant: the new lease's id.
pub fn granted(v: &Value) -> Option<i64> {
    number(&v["ID"])
}

/// lease/keepalive: whether the lease still lives. etcd leaves the TTL
/// out when it is 0, that is, when the lease has expired.
pub fn kept_alive(v: &Value) -> bool {
    number(&v["result"]["TTL"]).unwrap_or(0) > 0
}

/// kv/txn of a create-if-absent: made (at which revision), or taken.
/// None when it claims success without a revision.
pub fn created(v: &Value) -> Option<Created> {
    if v["succeeded"].as_bool() != Some(true) {
        return Some(Created::Taken);
    }
    revision(&v["header"]["revision"]).map(Created::Made)
}

/// kv/range: the keys (those that do not decode are left out) and the
/// store's revision. None without a revision.
pub fn range(v: &Value) -> Option<(Vec<Kv>, u64)> {
    let at = revision(&v["header"]["revision"])?;
    let kvs = (v["kvs"].as_array())
        .map(|a| a.iter().filter_map(kv).collect())
        .unwrap_or_default();
    Some((kvs, at))
}

/// etcd's JSON gives 64-bit numbers as strings.
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A revision is never negative; one that is, is not etcd's.
fn revision(v: &Value) -> Option<u64> {
    number(v).and_then(|n| u64::try_from(n).ok())
}

fn kv(v: &Value) -> Option<Kv> {
    // etcd's gateway leaves out an empty field: an empty value is absent,
    // but a key never is (it is never empty).
    let text = |f: &str| String::from_utf8(base64::decode(v[f].as_str()?)?).ok();
    Some(Kv {
        key: text("key")?,
        value: if v["value"].is_null() {
            String::new()
        } else {
            text("value")?
        },
        create_revision: revision(&v["create_revision"])?,
        mod_revision: revision(&v["mod_revision"])?,
        lease: number(&v["lease"]).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_answer_splits_at_its_blank_line() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(http(raw), Ok((200, &b"{\"a\":1}"[..])));
        assert_eq!(http(b"HTTP/1.1 200 OK\r\nX: y\r\n"), Err(NotHttp::Head));
        assert_eq!(http(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(NotHttp::Head));
    }

    /// Shapes as etcd 3.4's gateway sends them (numbers as strings, zero
    /// fields left out).
    #[test]
    fn each_call_reads_what_etcd_sends() {
        assert_eq!(
            granted(&json!({"ID": "7587862", "TTL": "3"})),
            Some(7587862)
        );
        assert!(kept_alive(&json!({"result": {"ID": "1", "TTL": "3"}})));
        assert!(!kept_alive(&json!({"result": {"ID": "1"}})));
        let made = json!({"header": {"revision": "42"}, "succeeded": true});
        assert_eq!(created(&made), Some(Created::Made(42)));
        assert_eq!(
            created(&json!({"header": {"revision": "43"}})),
            Some(Created::Taken)
        );
        assert_eq!(created(&json!({"succeeded": true})), None);
        let kvs = json!({"header": {"revision": "50"}, "kvs": [
            {"key": base64::encode(b"/sprout/c/leader"), "value": base64::encode(b"a:1"),
             "create_revision": "42", "mod_revision": "42", "lease": "7587862"},
            {"key": "!!", "value": "", "create_revision": "1", "mod_revision": "1"},
            {"value": "YToy", "create_revision": "1", "mod_revision": "1"},
            {"key": base64::encode(b"/sprout/c/nodes/a:1"), "create_revision": "2", "mod_revision": "3"},
        ]});
        let (kvs, at) = range(&kvs).expect("a range answer");
        assert_eq!(at, 50);
        assert_eq!(kvs.len(), 2, "a key not base64, or absent, is left out");
        assert_eq!((kvs[0].value.as_str(), kvs[0].create_revision), ("a:1", 42));
        assert_eq!((kvs[1].value.as_str(), kvs[1].mod_revision), ("", 3));
        assert_eq!(range(&json!({"header": {"revision": "-1"}})), None);
    }
}
