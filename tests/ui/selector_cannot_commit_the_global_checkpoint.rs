//! A selector has no method that writes `initFiles/fl_checkpoint`.

use fedota_store::{ProblemId, SelectorId, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open("/data")?;
    let selector = store.selector(&ProblemId::new("p1")?, &SelectorId::new("s1")?)?;

    selector.commit_global_checkpoint(1, &mut &b"global"[..])?;
    Ok(())
}
