using CallRouter.Messages;
using CallRouter.Router.Saga;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary>Every verdict <see cref="ClaimRules.Judge"/> can give, with its exact reason, detail and winner.</summary>
public sealed class ClaimRulesTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);
    private static readonly Guid CallId = Guid.Parse("6f1c0000-0000-4000-8000-000000000001");

    private static CallState Open(params string[] audience) =>
        new() { CorrelationId = CallId, Audience = [.. audience], Deadline = Now.AddSeconds(5) };

    private static ClaimCall Claim(string app) => new(CallId, app);

    [Fact]
    public void The_first_claim_from_the_audience_before_the_deadline_is_accepted()
    {
        var reply = ClaimRules.Judge(Open("sales", "support"), Claim("support"), Now);

        Assert.Equal(new ClaimReply(CallId, "support", true, null, null, "support"), reply);
    }

    [Fact]
    public void A_claim_exactly_at_the_deadline_is_still_accepted()
    {
        var call = Open("sales");

        Assert.True(ClaimRules.Judge(call, Claim("sales"), call.Deadline!.Value).Accepted);
    }

    [Fact]
    public void A_call_with_no_deadline_yet_accepts_an_audience_claim()
    {
        var call = Open("sales");
        call.Deadline = null;

        Assert.True(ClaimRules.Judge(call, Claim("sales"), Now.AddDays(1)).Accepted);
    }

    [Fact]
    public void The_winner_claiming_again_gets_the_same_yes_even_after_the_call_ended_and_the_deadline_passed()
    {
        var call = Open("sales");
        call.Winner = "sales";
        call.Status = CallStatus.Success;
        call.Reason = DispositionReason.Claimed;

        var reply = ClaimRules.Judge(call, Claim("sales"), Now.AddMinutes(1));

        Assert.Equal(new ClaimReply(CallId, "sales", true, null, null, "sales"), reply);
    }

    [Fact]
    public void Another_app_after_a_winner_is_told_already_claimed_and_who_won()
    {
        var call = Open("sales", "support");
        call.Winner = "sales";
        call.Status = CallStatus.Success;

        var reply = ClaimRules.Judge(call, Claim("support"), Now);

        Assert.Equal(new ClaimReply(CallId, "support", false, RejectReason.AlreadyClaimed, "call already claimed by sales", "sales"), reply);
    }

    [Fact]
    public void Already_claimed_comes_before_the_audience_check()
    {
        var call = Open("sales");
        call.Winner = "sales";

        var reply = ClaimRules.Judge(call, Claim("outsider"), Now);

        Assert.Equal(RejectReason.AlreadyClaimed, reply.Reason);
        Assert.Equal("sales", reply.Winner);
    }

    [Theory]
    [InlineData(CallStatus.Timeout, DispositionReason.NoClaim)]
    [InlineData(CallStatus.Abandoned, DispositionReason.CallerHangup)]
    [InlineData(CallStatus.Failed, DispositionReason.RouterNoAnswer)]
    public void A_call_that_ended_without_a_winner_is_finished_with_its_status_and_reason(string status, string reason)
    {
        var call = Open("sales");
        call.Status = status;
        call.Reason = reason;

        var reply = ClaimRules.Judge(call, Claim("sales"), Now);

        Assert.Equal(new ClaimReply(CallId, "sales", false, RejectReason.Finished, $"call already ended ({status}: {reason})", null), reply);
    }

    [Fact]
    public void A_claim_after_the_deadline_is_finished()
    {
        var call = Open("sales");

        var reply = ClaimRules.Judge(call, Claim("sales"), call.Deadline!.Value.AddTicks(1));

        Assert.Equal(new ClaimReply(CallId, "sales", false, RejectReason.Finished, "the broadcast deadline has passed", null), reply);
    }

    [Fact]
    public void A_late_claim_from_outside_the_audience_is_told_finished_not_invalid()
    {
        var call = Open("sales");

        var reply = ClaimRules.Judge(call, Claim("outsider"), call.Deadline!.Value.AddSeconds(1));

        Assert.Equal(RejectReason.Finished, reply.Reason);
    }

    [Fact]
    public void An_app_the_call_was_not_offered_to_is_an_invalid_request()
    {
        var reply = ClaimRules.Judge(Open("sales"), Claim("marketing"), Now);

        Assert.Equal(new ClaimReply(CallId, "marketing", false, RejectReason.InvalidRequest, "app 'marketing' was not offered this call", null), reply);
    }

    [Fact]
    public void The_audience_match_is_case_sensitive()
    {
        var reply = ClaimRules.Judge(Open("sales"), Claim("Sales"), Now);

        Assert.Equal(RejectReason.InvalidRequest, reply.Reason);
    }
}
