//! A selector cannot stream into `initFiles/fl_checkpoint` either.

use std::io::Write;

use fedota_store::{ProblemId, SelectorId, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open("/data")?;
    let selector = store.selector(&ProblemId::new("p1")?, &SelectorId::new("s1")?)?;

    let mut writer = selector.global_checkpoint_writer(1)?;
    writer.write_all(b"global")?;
    writer.commit()?;
    Ok(())
}
