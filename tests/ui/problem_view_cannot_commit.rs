//! The read-only view of a problem, which a selector can also get, has no way to
//! write the global checkpoint.

use fedota_store::{ProblemId, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open("/data")?;
    let problem = store.problem(&ProblemId::new("p1")?)?;

    problem.commit_global_checkpoint(1, &mut &b"global"[..])?;
    Ok(())
}
