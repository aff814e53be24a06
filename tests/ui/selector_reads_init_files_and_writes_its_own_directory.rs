//! Everything a selector is meant to do compiles, and works.

use std::io::{Read, Write};
use std::time::Duration;

use fedota_store::{CreateOptions, ProblemId, SelectorId, Store};

fn read_all(r: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let id = ProblemId::new("p1")?;
    store.create_problem(
        &id,
        &mut &b"model"[..],
        &mut &b"global 0"[..],
        CreateOptions::default(),
    )?;
    let selector = store.selector(&id, &SelectorId::new("selector-1.selector:50051")?)?;

    // It reads initFiles.
    assert_eq!(selector.read_model(read_all)?.value, b"model");
    assert_eq!(
        selector.read_global_checkpoint(read_all)?.value,
        b"global 0"
    );
    assert_eq!(
        selector.read_global_checkpoint_of(0, read_all)?.value,
        b"global 0"
    );
    assert_eq!(selector.global_round()?, 0);
    assert_eq!(
        selector.wait_for_global_round(0, Duration::from_millis(10))?,
        0
    );

    // It writes its own client updates and aggregate, and reads them back.
    selector.commit_client_update(0, 1, 5, &mut &b"update"[..])?;
    let mut writer = selector.client_update_writer(0, 2, 6)?;
    writer.write_all(b"update 2")?;
    writer.commit()?;
    assert_eq!(selector.clients()?, vec![1, 2]);
    assert_eq!(selector.read_client_update(0, 2, read_all)?.weight, Some(6));

    selector.commit_aggregate(0, 11, &mut &b"aggregate"[..])?;
    let mut writer = selector.aggregate_writer(0, 12)?;
    writer.write_all(b"aggregate again")?;
    writer.commit()?;
    assert_eq!(selector.read_aggregate(0, read_all)?.weight, Some(12));
    assert_eq!(selector.id().as_str(), "selector-1.selector:50051");
    Ok(())
}
