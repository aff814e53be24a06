//! Writers come only from role handles: there is no public way to open a writer on
//! the global checkpoint's artifact and skip the coordinator's checks.

use fedota_store::{ArtifactKind, ArtifactWriter, ProblemId, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open("/data")?;
    let problem = store.problem(&ProblemId::new("p1")?)?;
    let artifact = problem.artifact(ArtifactKind::GlobalCheckpoint);
    let writer_id = problem.record(&artifact)?.ok_or("no record")?.writer;

    let writer = ArtifactWriter::new(artifact, 1, None, writer_id, None, None)?;
    writer.commit()?;
    Ok(())
}
