//! The HTTP scenarios, and `smoke`, which runs every scenario the target
//! supports with tiny numbers.

pub mod audit;
pub mod dashboard;
pub mod http_get;
pub mod login_storm;
pub mod smoke;
