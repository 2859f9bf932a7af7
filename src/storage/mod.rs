//! Where uploaded bytes live. Today the local disk; the session reaches it
//! only through the functions here.

pub mod local;
