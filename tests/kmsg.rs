//! The two ways of reading the kernel log agree: the one-call syslog(2) read that
//! `tune` prefers and the record-by-record /dev/kmsg read it falls back to give the
//! same messages at the same times. Reads the host's log (read-only); needs root
//! where `kernel.dmesg_restrict` is 1.

mod support;

use tune::facts::kmsg;

#[test]
fn syslog_and_kmsg_reads_agree() {
    if !support::require(support::is_root(), "reading the kernel log needs root") {
        return;
    }
    let boot = kmsg::boot_time();
    let text = kmsg::read_syslog_buffer().expect("syslog(2) READ_ALL");
    let syslog = kmsg::parse_syslog(&text, boot).expect("printk timestamps are on");
    let records = kmsg::read_lines_from_kmsg(boot).expect("/dev/kmsg");
    assert!(!syslog.is_empty() && !records.is_empty());
    // The ring buffer may have moved on between the two reads; compare the records
    // both still hold, and only one-line ones (/dev/kmsg escapes embedded newlines).
    let first = syslog[0].time;
    let mut compared = 0;
    for r in records
        .iter()
        .filter(|r| r.time >= first && !r.message.contains("\\x"))
    {
        let found = syslog
            .iter()
            .any(|l| l.message == r.message && (l.time - r.time).abs() < 1e-5);
        assert!(
            found,
            "{:?} at {} is missing from the syslog read",
            r.message, r.time
        );
        compared += 1;
    }
    assert!(compared > 10, "only {compared} records compared");
}
