//! The delta decoders on arbitrary bytes: a signature's entries (its size
//! and chunk count taken from the first 16 bytes) and a recipe, checked
//! against a small old file. They may refuse anything, but never panic,
//! hang, or accept a signature that names bytes outside its file.
#![no_main]

use ftp::wire::delta::{recipe, signature, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((head, rest)) = data.split_first_chunk::<16>() {
        let size = u64::from_le_bytes(head[..8].try_into().unwrap()) % (1 << 24);
        let chunks = u64::from_le_bytes(head[8..].try_into().unwrap()) % 2048;
        if let Ok(mut decoder) = signature::SignatureDecoder::new(size, chunks) {
            let mut at = 0;
            while let Ok(Step::Item(chunk, used)) = decoder.decode(&rest[at..]) {
                assert!(chunk.end() <= size);
                at += used;
            }
        }
    }
    if let Ok(ops) = recipe::decode_all(data) {
        let _ = recipe::plan(&ops, &[0, 100, 250, 300], data.len() as u64 * 64);
    }
});
