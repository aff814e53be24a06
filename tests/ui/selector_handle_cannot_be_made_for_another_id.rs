//! A selector handle comes only from `Store::selector`; nobody can build one that
//! writes under another selector's id by hand.

use fedota_store::{ProblemId, Selector, SelectorId, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open("/data")?;
    let problem = store.problem(&ProblemId::new("p1")?)?;

    let other = Selector::new(problem, SelectorId::new("someone-else")?);
    other.commit_aggregate(1, 10, &mut &b"aggregate"[..])?;
    Ok(())
}
