//! Kernel access shared by `facts` (reading) and `apply` (writing): /proc/sys keys and
//! paths, netlink attributes and dumps, the rtnetlink session, network namespaces.
//!
//! Names no stage: these modules know the kernel's interfaces, not playbooks, findings
//! or plans.

pub mod ethtool;
pub mod netns;
pub mod nlattr;
pub mod rtdump;
pub mod rtnl;
pub mod sysctl;
