//! One module per family of commands.

pub mod correct;
pub mod record;
pub mod release;
pub mod reports;
pub mod run;
