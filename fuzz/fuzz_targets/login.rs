//! The login's state machine (the one the poller drives) on arbitrary
//! bytes from a client's first byte: never a panic. The first byte picks
//! an anonymous server or not and how many bytes each step is fed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let root = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ftp-fuzz-login-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    });
    let ctx = ftp::testing::context(root);
    let piece = usize::from(mode >> 1).max(1);
    let _ = ftp::testing::login_bytes(&ctx, mode & 1 == 1, input, piece);
});
