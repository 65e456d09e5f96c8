namespace CallRouter.Messages;

/// <summary>
/// The first event of a controlled call (adapter → the winning app, on <see cref="Topology.ControlEventExchange"/>):
/// the caller's channel stays in the router's Stasis app and the app now drives it with <see cref="ControlCall"/>
/// commands published to <see cref="Topology.ControlExchange"/> with routing key <paramref name="Route"/>.
/// </summary>
public sealed record CallControlStarted(Guid CallId, string App, string ChannelId, string Node, string Route, DateTimeOffset StartedAt)
{
    public string Type => Topology.Types.CallControlStarted;
}
