//! A whole logged-in connection on arbitrary bytes, through the server's own
//! request path (the poller's header decoder, the worker's loop, the
//! outbox), against a real folder:
//! never a panic, and nothing created outside the root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let base = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ftp-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(d.join("root"));
        d
    });
    let root = base.join("root");
    let ctx = ftp::testing::context(&root);
    let _ = ftp::testing::serve_bytes(&ctx, data);
    let entries = std::fs::read_dir(base).map(|d| d.count()).unwrap_or(0);
    assert_eq!(entries, 1, "something was created outside the root");
});
