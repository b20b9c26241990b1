//! Fuzz bytes as what an etcd endpoint answers `sproutctl supervise`:
//! anything may listen on the port it was given, and etcd's JSON is read
//! by field. The answer is split as HTTP, its body parsed as JSON, and
//! read as each call's answer (grant, keepalive, txn, range).
//!
//! Checked: no panic; a body is the tail of the bytes it came from; a
//! range gives no key that etcd did not send (each key read is, base64
//! encoded, one of the answer's "key" strings); a revision read is never
//! more than the answer holds; and base64 round-trips the input (and what it decodes encodes back
//! to the very text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "../../src/bin/sproutctl/base64.rs"]
mod base64;
#[path = "../../src/bin/sproutctl/supervise/etcd/answer.rs"]
mod answer;

fuzz_target!(|data: &[u8]| {
    assert_eq!(base64::decode(&base64::encode(data)).as_deref(), Some(data));
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(plain) = base64::decode(text)
    {
        assert_eq!(base64::encode(&plain), text);
    }
    // The body alone too, so that the fuzzer reaches the JSON readers
    // without first finding an HTTP head.
    let body = match answer::http(data) {
        Ok((_status, body)) => {
            assert!(data.ends_with(body));
            body
        }
        Err(_) => data,
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let _ = answer::granted(&v);
    let _ = answer::kept_alive(&v);
    if let Some(answer::Created::Made(rev)) = answer::created(&v) {
        assert!(i64::try_from(rev).is_ok());
    }
    if let Some((kvs, _revision)) = answer::range(&v) {
        let sent: Vec<&str> = (v["kvs"].as_array().into_iter().flatten())
            .filter_map(|kv| kv["key"].as_str())
            .collect();
        for kv in &kvs {
            let coded = base64::encode(kv.key.as_bytes());
            assert!(sent.contains(&coded.as_str()));
        }
        assert!(kvs.len() <= sent.len());
    }
});
