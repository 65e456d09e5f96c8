using CallRouter.Messages;
using MassTransit;

namespace CallRouter.Router.Saga;

/// <summary>One broadcast call: what was offered, to whom, and how it was decided.</summary>
public sealed class CallState : SagaStateMachineInstance, ISagaVersion
{
    public Guid CorrelationId { get; set; }
    public string CurrentState { get; set; } = "";
    public int Version { get; set; }

    public string? ChannelId { get; set; }
    public string? Node { get; set; }
    public List<string> Audience { get; set; } = [];
    public bool NotifyClaimed { get; set; }
    public DateTimeOffset? BroadcastAt { get; set; }
    /// <summary>On this router's clock (see <see cref="AdapterClocks"/>), not the adapter's stamp.</summary>
    public DateTimeOffset? Deadline { get; set; }

    public string? Winner { get; set; }
    public DateTimeOffset? ClaimedAt { get; set; }
    public ClaimCall? WinningClaim { get; set; }
    public int ClaimCount { get; set; }

    /// <summary>Apps whose claims were counted: once every app offered the call has claimed, the tally goes out at once.</summary>
    public List<string> Claimants { get; set; } = [];

    /// <summary>The claim count last sent to the adapter (ClaimTally), if any.</summary>
    public int? TalliedClaims { get; set; }

    /// <summary>SUCCESS / TIMEOUT / FAILED / ABANDONED once decided.</summary>
    public string? Status { get; set; }
    public string? Reason { get; set; }

    /// <summary>Claims that overtook the broadcast, in arrival order.</summary>
    public List<PendingClaim> PendingClaims { get; set; } = [];
}

/// <summary>A claim kept until its broadcast arrives, with where to answer it.</summary>
public sealed record PendingClaim(ClaimCall Claim, ReplyRoute Reply, DateTimeOffset ReceivedAt);

/// <summary>The AMQP reply_to and correlation_id a claim came with.</summary>
public sealed record ReplyRoute(string? ReplyTo, string? CorrelationId);
