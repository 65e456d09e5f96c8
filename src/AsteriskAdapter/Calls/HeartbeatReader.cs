using System.Text.Json;
using CallRouter.Common;
using CallRouter.Messages;

namespace CallRouter.AsteriskAdapter.Calls;

/// <summary>Reads an app's heartbeat: a well-formed AppHeartbeat for a valid app name that the sending RabbitMQ user owns, or why not.</summary>
public sealed class HeartbeatReader(AppOwnership ownership)
{
    public sealed record Result(AppHeartbeat? Heartbeat, string? Error);

    /// <param name="body">The delivery's body.</param>
    /// <param name="userId">The delivery's AMQP user_id, which the broker has checked against the publisher's connection.</param>
    public Result Read(ReadOnlySpan<byte> body, string? userId)
    {
        if (body.Length > Wire.MaxMessageBytes)
            return new Result(null, $"message is {body.Length} bytes; the limit is {Wire.MaxMessageBytes}");
        AppHeartbeat? heartbeat;
        try
        {
            heartbeat = JsonSerializer.Deserialize<AppHeartbeat>(body, Wire.Json);
        }
        catch (JsonException exception)
        {
            return new Result(null, $"not an AppHeartbeat: {exception.Message}");
        }
        if (!Wire.IsValidAppName(heartbeat?.App))
            return new Result(null, $"app '{heartbeat?.App}' is not a valid app name");
        if (ownership.Refusal(userId, heartbeat!.App, "heartbeat") is { } refusal)
            return new Result(null, refusal);
        return new Result(heartbeat, null);
    }
}
