//! Why a membership change or a leadership transfer did not happen: the typed reasons inside
//! [`FailReason::MembershipRefused`](super::FailReason::MembershipRefused) and
//! [`FailReason::TransferFailed`](super::FailReason::TransferFailed).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a membership change or a leadership transfer was refused before anything was appended
/// to the log. A follower forwards the request to the leader, which answers with one of these;
/// each names members by address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Error)]
pub enum MembershipRefusal {
    /// The node's `dynamic_membership_change` option is off.
    #[error("dynamic_membership_change is off")]
    DynamicMembershipOff,
    /// The leader has not committed an entry of its own term yet; retry shortly.
    #[error("the leader has not committed an entry of its term yet")]
    LeaderNotReady,
    /// Another change is under way: a configuration entry is not committed yet, or a new node
    /// catches up before its promotion. One change at a time; retry once it is done.
    #[error("another membership change is under way")]
    ChangeInProgress,
    /// The leader is handing its leadership over.
    #[error("a leadership transfer is under way")]
    TransferInProgress,
    /// The node is a voter already.
    #[error("{0} is a member already")]
    AlreadyMember(String),
    /// The node is not a member.
    #[error("{0} is not a member")]
    NotMember(String),
    /// Removing the node would leave the cluster without a voter.
    #[error("removing {0} would leave no voter")]
    WouldLeaveNoVoters(String),
    /// The address's node id (a hash of the address) is a member's already, under another
    /// address: the two cannot both be members. Use another spelling or port.
    #[error("the node id of {address} is {member}'s already")]
    IdCollision {
        /// The address asked for.
        address: String,
        /// The member that holds the id.
        member: String,
    },
    /// The address is longer than a configuration entry takes.
    #[error("the address {0:?} is too long")]
    AddressTooLong(String),
    /// The configuration holds as many members as it may.
    #[error("too many members")]
    TooManyMembers,
    /// The transfer's target is not a voter of the membership in force.
    #[error("{0} is not a voter")]
    TargetNotVoter(String),
    /// The transfer's target leads already.
    #[error("{0} leads already")]
    TargetIsLeader(String),
    /// A transfer to any voter was asked in a cluster of one voter.
    #[error("there is no other voter to hand the leadership to")]
    NoOtherVoter,
}

/// How a leadership transfer that started ended without its target leading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Error)]
pub enum TransferFailure {
    /// The target did not take over in time; the leader leads on.
    #[error("the target did not take over in time")]
    TimedOut,
    /// The target stopped being a voter meanwhile.
    #[error("the target stopped being a voter")]
    TargetNotVoter,
    /// The leader lost its leadership another way, or another node was elected.
    #[error("the leadership went elsewhere")]
    Interrupted,
}
