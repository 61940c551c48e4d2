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
