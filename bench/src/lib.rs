//! Library side of `bcl-bench`: the kiosk load harness (`kiosk-load`), kept in a library so that its
//! pieces are unit-tested and the binary stays a thin command line.

pub mod load;
