//! Everything that reaches out of the process on the product's behalf.
//! Project rule: nothing outside `src/outbound/` opens an SMTP connection or
//! builds an HTTP client, so every outbound path can be reviewed (and
//! SSRF-guarded where the destination is user-supplied) in one place.

pub mod mail;
