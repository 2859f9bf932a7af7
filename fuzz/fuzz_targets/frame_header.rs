//! The frame reader and the header parser on arbitrary bytes: they may
//! refuse anything, but never panic, hang or allocate past the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Ok(Some(header)) = ftp::wire::frame::read(&mut input, ftp::wire::frame::MAX_HEADER_LEN) {
        let _ = ftp::wire::message::parse_request(&header);
    }
    let _ = ftp::wire::message::parse_request(data);
});
