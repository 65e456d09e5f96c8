using CallRouter.Messages;
using CallRouter.Tests.Infrastructure;
using Dapper;
using Xunit;

namespace CallRouter.Tests.CallControl;

/// <summary>The CDR of a controlled call says so, and each channel the app created has a row linked to the call.</summary>
public sealed class ControlCdrTests : PostgresStackTest
{
    [Fact]
    public async Task A_controlled_call_row_says_controlled_answered_and_how_it_ended_and_its_callee_has_a_linked_row()
    {
        await using var app = await ControlledCall.StartApp(Stack, "dialer");
        var call = await ControlledCall.Start(Stack, app);
        Assert.True((await call.Do(new ControlCall(call.CallId, ControlCommands.Continue))).Ok);
        await app.WaitEnded(call.CallId);
        await call.Caller.Destroyed.WaitAsync(TimeSpan.FromSeconds(10)); // the simulator hangs it up after the handover

        await WaitForCdrs(2, TimeSpan.FromSeconds(20));

        await using var connection = await Database.DataSource.OpenConnectionAsync();
        var rows = (await connection.QueryAsync<(Guid CallId, Guid? ParentCallId, string ChannelId, string Status, string Reason, string? Winner,
            bool Controlled, DateTime? AnsweredAt, string? ControlEnding, DateTime EndedAt)>(
            "SELECT call_id, parent_call_id, channel_id, status, reason, winner, controlled, answered_at, control_ending, ended_at FROM call_records")).ToList();
        var callerRow = Assert.Single(rows, r => r.ChannelId == call.Caller.Id);
        Assert.Equal((call.CallId, null, CallStatus.Success, DispositionReason.Controlled, "dialer"),
            (callerRow.CallId, callerRow.ParentCallId, callerRow.Status, callerRow.Reason, callerRow.Winner));
        Assert.Equal((true, ControlEnding.Continued), (callerRow.Controlled, callerRow.ControlEnding));
        Assert.NotNull(callerRow.AnsweredAt);
        Assert.True(callerRow.AnsweredAt < callerRow.EndedAt);
        var calleeRow = Assert.Single(rows, r => r.ChannelId == call.Callee);
        Assert.Equal((call.CallId, CallStatus.Success, DispositionReason.Created, "dialer", false),
            (calleeRow.ParentCallId, calleeRow.Status, calleeRow.Reason, calleeRow.Winner, calleeRow.Controlled));
        Assert.NotNull(calleeRow.AnsweredAt);
        Assert.NotEqual(call.CallId, calleeRow.CallId);
    }
}
