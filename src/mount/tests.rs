//! Unit tests of the mount table parser and of the findings, on sample mountinfo lines.

use super::*;

const EXT4_ROOT: &str = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard";
const NFS4: &str = "45 27 0:52 / /data rw,relatime shared:30 - nfs4 10.0.0.5:/export \
    rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,\
    retrans=2,sec=sys,clientaddr=10.0.0.7,local_lock=none,addr=10.0.0.5";
const NFS3_NOLOCK: &str = "46 27 0:53 / /data3 rw,relatime shared:31 - nfs \
    10.0.0.5:/export rw,vers=3,rsize=1048576,wsize=1048576,namlen=255,hard,nolock,\
    proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.0.5,mountvers=3,\
    mountport=20048,mountproto=udp,local_lock=all,addr=10.0.0.5";

fn finding(mount: &MountInfo, check: &str) -> Finding {
    mount
        .findings()
        .into_iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no {check} finding"))
}

fn nfs4_with(options: &str) -> MountInfo {
    MountInfo::parse(&format!(
        "45 27 0:52 / /data rw,relatime - nfs4 srv:/export rw,vers=4.2,hard,{options}"
    ))
    .unwrap()
}

#[test]
fn parses_every_field_of_an_nfs4_line() {
    let m = MountInfo::parse(NFS4).unwrap();

    assert_eq!((m.mount_id, m.parent_id, m.device), (45, 27, (0, 52)));
    assert_eq!(m.root, Path::new("/"));
    assert_eq!(m.mount_point, Path::new("/data"));
    assert_eq!(m.mount_options, ["rw", "relatime"]);
    assert_eq!(m.optional_fields, ["shared:30"]);
    assert_eq!(m.fs_type, "nfs4");
    assert_eq!(m.source, "10.0.0.5:/export");
    assert_eq!(m.option("vers"), Some("4.2"));
    assert_eq!(m.option("local_lock"), Some("none"));
    assert!(m.has_option("hard") && !m.has_option("nolock"));
    assert_eq!(m.nfs_version(), Some(4));
}

#[test]
fn a_line_without_optional_fields_or_super_options_parses() {
    let m = MountInfo::parse("30 25 0:27 / /dev/shm rw - tmpfs tmpfs").unwrap();
    assert!(m.optional_fields.is_empty() && m.super_options.is_empty());
    assert!(m.is_local());
}

#[test]
fn escaped_spaces_in_the_mount_point_are_decoded() {
    let m = MountInfo::parse(r"50 27 0:60 / /mnt/my\040data\134x rw - ext4 /dev/sdb rw").unwrap();
    assert_eq!(m.mount_point, Path::new(r"/mnt/my data\x"));
}

#[test]
fn malformed_lines_are_refused_with_the_line_and_its_number() {
    let err =
        MountTable::parse(&format!("{EXT4_ROOT}\n\n12 x 0:1 / /a rw - ext4 d rw\n")).unwrap_err();
    assert_eq!(err.line_no, 3);
    assert!(err.reason.contains("parent id"), "{err}");
    assert!(err.to_string().contains("12 x 0:1"), "{err}");

    for bad in [
        "",
        "1 2 3:4 / /a rw ext4 d rw",
        "1 2 3:4 / /a rw -",
        "1 2 34 / /a rw - x y z",
    ] {
        assert!(MountInfo::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn nolock_is_a_locking_failure() {
    let m = MountInfo::parse(NFS3_NOLOCK).unwrap();
    let f = finding(&m, "locking");

    assert_eq!(f.severity, Severity::Fail);
    assert!(f.summary.starts_with("nolock"), "{}", f.summary);
    assert!(f.fix.is_some());
    assert_eq!(finding(&m, "nfs-version").severity, Severity::Warn);
}

#[test]
fn local_lock_posix_and_all_fail_and_flock_warns() {
    for (option, severity) in [
        ("local_lock=posix", Severity::Fail),
        ("local_lock=all", Severity::Fail),
        ("local_lock=flock", Severity::Warn),
        ("local_lock=none", Severity::Pass),
    ] {
        let f = finding(&nfs4_with(option), "locking");
        assert_eq!(f.severity, severity, "{option}");
        assert!(f.summary.contains(option), "{option}: {}", f.summary);
    }
}

#[test]
fn a_default_nfs4_mount_passes_every_check() {
    let m = MountInfo::parse(NFS4).unwrap();
    let findings = m.findings();

    assert_eq!(findings.len(), 7);
    for f in &findings {
        assert_eq!(f.severity, Severity::Pass, "{f:?}");
    }
}

#[test]
fn nocto_warns() {
    assert_eq!(
        finding(&nfs4_with("nocto"), "close-to-open").severity,
        Severity::Warn
    );
    assert_eq!(
        finding(&nfs4_with("cto"), "close-to-open").severity,
        Severity::Pass
    );
}

#[test]
fn long_attribute_caches_warn_whichever_way_they_are_set() {
    for option in ["actimeo=600", "acdirmax=120", "acregmax=61", "acdirmin=90"] {
        let f = finding(&nfs4_with(option), "attribute-cache");
        assert_eq!(f.severity, Severity::Warn, "{option}");
    }
    for option in ["actimeo=60", "acdirmax=10", "noac"] {
        let f = finding(&nfs4_with(option), "attribute-cache");
        assert_eq!(f.severity, Severity::Pass, "{option}");
    }
}

#[test]
fn attribute_cache_applies_defaults_then_options_in_order() {
    let ac = nfs4_with("actimeo=10,acdirmax=30")
        .attribute_cache()
        .unwrap();
    assert_eq!(
        (ac.acregmin, ac.acregmax, ac.acdirmin, ac.acdirmax),
        (10, 10, 10, 30)
    );

    let ac = MountInfo::parse(NFS4).unwrap().attribute_cache().unwrap();
    assert_eq!(
        (ac.acregmin, ac.acregmax, ac.acdirmin, ac.acdirmax),
        (3, 60, 30, 60)
    );

    assert_eq!(MountInfo::parse(EXT4_ROOT).unwrap().attribute_cache(), None);
}

#[test]
fn lookup_cache_is_classified() {
    assert!(
        finding(&nfs4_with("lookupcache=pos"), "lookup-cache")
            .summary
            .contains("pos")
    );
    assert!(
        finding(&nfs4_with("lookupcache=none"), "lookup-cache")
            .summary
            .contains("none")
    );
    let default = finding(&nfs4_with("local_lock=none"), "lookup-cache");
    assert!(default.reason.contains("60 s"), "{}", default.reason);
}

#[test]
fn soft_mounts_warn() {
    assert_eq!(
        finding(&nfs4_with("soft"), "hard-mount").severity,
        Severity::Warn
    );
}

#[test]
fn an_unknown_network_filesystem_warns_and_local_ones_pass() {
    let cifs = MountInfo::parse("60 27 0:70 / /data rw - cifs //srv/share rw").unwrap();
    assert_eq!(cifs.findings().len(), 1);
    assert_eq!(finding(&cifs, "filesystem").severity, Severity::Warn);

    let ext4 = MountInfo::parse(EXT4_ROOT).unwrap();
    assert_eq!(ext4.findings().len(), 1);
    assert_eq!(finding(&ext4, "filesystem").severity, Severity::Pass);
}

#[test]
fn find_picks_the_longest_mount_point_and_the_last_of_equals() {
    let table = MountTable::parse(&format!(
        "{EXT4_ROOT}\n{NFS4}\n{NFS3_NOLOCK}\n\
         47 45 0:54 / /data/p1 rw - tmpfs tmpfs rw\n\
         48 27 0:55 / /data rw - nfs4 other:/x rw,vers=4.1,local_lock=none\n"
    ))
    .unwrap();

    assert_eq!(
        table
            .find(Path::new("/data/p1/initFiles"))
            .unwrap()
            .mount_id,
        47
    );
    assert_eq!(table.find(Path::new("/data/p2")).unwrap().mount_id, 48);
    assert_eq!(table.find(Path::new("/data3/x")).unwrap().mount_id, 46);
    assert_eq!(table.find(Path::new("/datax")).unwrap().mount_id, 27);
    assert_eq!(table.find(Path::new("/")).unwrap().mount_id, 27);
}

#[test]
fn the_mount_of_a_temporary_directory_is_found() {
    if !Path::new(MOUNTINFO).exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = mount_of(dir.path()).unwrap();
    let canonical = fs::canonicalize(dir.path()).unwrap();
    assert!(canonical.starts_with(&mount.mount_point));
}

#[test]
fn mount_of_a_missing_path_names_it() {
    let err = mount_of(Path::new("/no/such/fedota/root")).unwrap_err();
    assert!(err.to_string().contains("/no/such/fedota/root"), "{err}");
}
