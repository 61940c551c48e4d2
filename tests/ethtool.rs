//! Ring sizes through ethtool netlink (`tune::kernel::ethtool`) against the real host
//! kernel, in a throwaway namespace: veth and loopback have no ring parameters, which
//! must read as `Rings::Unsupported` (not an error), and setting one must fail with
//! the kernel's EOPNOTSUPP and change nothing. The receive-drop counters of the link
//! dump (IFLA_STATS64) are read from the same namespace. Ring changes on a NIC that
//! has rings (virtio-net) are tested in the kernel lab (tests/lab.rs).
//!
//! Needs root and `ip`; without them the test prints SKIP, or fails when CI=true.

mod support;

use support::{Netns, require_netns};
use tune::kernel::{ethtool, rtdump};

fn index_of(name: &'static str) -> u32 {
    rtdump::links(|l| (l.index, l.name.map(<[u8]>::to_vec)))
        .unwrap()
        .into_iter()
        .find(|(_, n)| n.as_deref() == Some(name.as_bytes()))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no link {name}"))
}

#[test]
fn veth_and_loopback_have_no_rings_and_their_drop_counters_read() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("ethtool");
    ns.sh("ip link add rg0 type veth peer name rg1 && ip link set rg0 up && ip link set rg1 up");
    let (family, veth, lo, set, drops) = ns.run(|| {
        let veth = index_of("rg0");
        let lo = index_of("lo");
        let drops = rtdump::links(|l| (l.index, l.rx_drops)).unwrap();
        (
            ethtool::family(),
            ethtool::rings(veth),
            ethtool::rings(lo),
            ethtool::set_rx_ring(lo, 4096),
            drops,
        )
    });
    eprintln!("family {family:?}\nveth {veth:?}\nlo {lo:?}\nset lo rx 4096: {set:?}");
    assert!(matches!(family, Ok(Some(_))), "ethtool family: {family:?}");
    for (what, rings) in [("veth", &veth), ("lo", &lo)] {
        match rings {
            Ok(ethtool::Rings::Unsupported(why)) => {
                assert!(why.contains("not supported"), "{what}: {why}")
            }
            other => panic!("{what}: expected unsupported, got {other:?}"),
        }
    }
    let err = set.expect_err("setting lo's RX ring must fail");
    assert_eq!(err.errno, libc::EOPNOTSUPP, "{err}");
    // Every link of the dump carries IFLA_STATS64; a fresh namespace has dropped nothing.
    assert!(drops.len() >= 3, "{drops:?}");
    for (index, d) in &drops {
        let d = d.unwrap_or_else(|| panic!("link {index} without IFLA_STATS64"));
        assert_eq!(d.rx_missed_errors, 0, "link {index}: {d:?}");
        assert_eq!(d.rx_fifo_errors, 0, "link {index}: {d:?}");
    }
}

/// Sends Ethernet broadcasts of an unassigned EtherType (0x88b5, IEEE local
/// experimental) out of `ifindex` from a thread in namespace `ns` until `stop` is set:
/// the veth peer receives them, no protocol handler takes them, and the kernel counts
/// each in the peer's rx_dropped (`__netif_receive_skb_core`). A real stack drop, as
/// an unknown protocol on a NIC is.
fn flood_unknown_protocol(
    ns: &str,
    ifindex: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::Ordering;
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    std::thread::spawn(move || {
        // SAFETY: file is an open nsfs fd; only this thread changes namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        // SAFETY: plain socket(2); the fd is closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = ifindex as i32;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let mut frame = vec![0xffu8; 6];
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x88, 0xb5]);
        frame.resize(60, 0);
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: frame and to outlive the call; the lengths are theirs.
            let n = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const to).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if n > 0 {
                sent += 1;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        sent
    })
}

/// The `rx_drops` condition against real counters: drops that grow during the window
/// fire (the evidence names the growth), the same drops once stopped are quiet (old
/// drops, no growth), a namespace that never dropped is not even sampled (no wait),
/// and the bundled nic-ring playbook never raises a ring for stack drops (rx_dropped).
/// A saved plan records both readings, and `tune apply PLAN` re-derives with them.
#[test]
fn rx_drop_growth_is_measured_over_the_window_and_recorded_in_plans() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    if !require_netns() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let pb = dir.path().join("drops.yml");
    std::fs::write(
        &pb,
        "name: drops\ndescription: 'Symptom: test; report only.'\nrules:\n  - id: stack-drops\n    description: rx_dropped grew on rd1.\n    detect:\n      rx_drops: {link: rd1, stat: dropped, above: 10}\n",
    )
    .unwrap();
    let ns = Netns::new("rxdrops");
    ns.sh("ip link add rd0 type veth peer name rd1 && ip link set rd0 up && ip link set rd1 up");
    let pb = pb.to_str().unwrap();
    let findings = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", support::text(out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["findings"].clone()
    };

    // Healthy: nothing dropped since the link was made, so no second reading.
    let started = std::time::Instant::now();
    let out = ns.tune(&state, &["plan", "-p", pb, "--format", "json"]);
    let healthy = started.elapsed();
    assert_eq!(
        findings(&out),
        serde_json::json!([]),
        "{}",
        support::text(&out)
    );
    assert!(
        healthy.as_millis() < 900,
        "a healthy plan waited {healthy:?}"
    );

    // Drops growing during the window.
    let rd0 = ns.run(|| index_of("rd0"));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = flood_unknown_protocol(&ns.name, rd0, stop.clone());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let plan_file = dir.path().join("plan.json");
    let out = ns.tune(
        &state,
        &[
            "plan",
            "-p",
            pb,
            "--format",
            "json",
            "-o",
            plan_file.to_str().unwrap(),
        ],
    );
    let bundled = ns.tune(
        &state,
        &[
            "plan",
            "-p",
            "playbooks/nic-ring.yml",
            "--detailed-exitcode",
        ],
    );
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    let fired = findings(&out);
    eprintln!("sent {sent}; {fired:#}");
    assert_eq!(fired[0]["status"], "fired", "{fired:#}");
    let evidence = fired[0]["evidence"][0]["observed"].as_str().unwrap();
    assert!(evidence.starts_with("rx_dropped grew by "), "{evidence}");
    assert_eq!(
        bundled.status.code(),
        Some(0),
        "{}",
        support::text(&bundled)
    );
    assert!(
        support::text(&bundled).contains("No rule fired"),
        "{}",
        support::text(&bundled)
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    let recorded = &saved["made_from"]["rx_drops"]["value"];
    assert_eq!(recorded["sampled"], true, "{recorded:#}");
    assert!(recorded["window"].as_f64().unwrap() >= 0.9, "{recorded:#}");
    let rd1 = recorded["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "rd1")
        .unwrap_or_else(|| panic!("no rd1 in {recorded:#}"));
    let (first, second) = (
        rd1["first"]["rx_dropped"].as_u64().unwrap(),
        rd1["second"]["rx_dropped"].as_u64().unwrap(),
    );
    assert!(second > first + 10, "{rd1:#}");

    // Stopped: the counter stays high, but does not grow.
    let out = ns.tune(&state, &["plan", "-p", pb, "--format", "json"]);
    assert_eq!(
        findings(&out),
        serde_json::json!([]),
        "{}",
        support::text(&out)
    );
    // A snapshot replays: both readings are in it.
    let facts = ns.tune(&state, &["facts", "-p", pb, "--format", "json"]);
    assert!(facts.status.success(), "{}", support::text(&facts));
    let snapshot: serde_json::Value = serde_json::from_slice(&facts.stdout).unwrap();
    assert_eq!(snapshot["rx_drop_samples"]["value"]["sampled"], true);

    // The saved plan (no changes: a report-only rule) is re-derived from its readings.
    let out = ns.tune(&state, &["apply", "--yes", plan_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", support::text(&out));
    assert!(
        support::text(&out).contains("Re-derived"),
        "{}",
        support::text(&out)
    );
}
