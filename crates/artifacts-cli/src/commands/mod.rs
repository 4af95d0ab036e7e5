//! One module per command group.

pub mod activate;
pub mod backend;
pub mod explain;
pub mod generate;
pub mod init;
pub mod lifecycle;
pub mod manual;
pub mod openbao;
pub mod preflight;
pub mod status;
pub mod stored;
