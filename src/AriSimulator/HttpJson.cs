using Microsoft.AspNetCore.Http;

namespace CallRouter.AriSimulator;

/// <summary>JSON response helpers and the error bodies Asterisk answers with.</summary>
internal static class HttpJson
{
    public static readonly byte[] AuthenticationRequired = AriJson.Message("Authentication required");
    public static readonly byte[] ChannelNotFound = AriJson.Message("Channel not found");
    public static readonly byte[] NotInStasis = AriJson.Message("Channel not in Stasis application");
    public static readonly byte[] VariableRequired = AriJson.Message("Variable name is required");
    public static readonly byte[] FunctionFailed = AriJson.Message("Failed to execute function");
    public static readonly byte[] VariableNotFound = AriJson.Message("Provided variable was not found");
    public static readonly byte[] EventSourceMissing = AriJson.Message("Event source does not exist");
    public static readonly byte[] EventSourceRequired = AriJson.Message("Missing parameter eventSource");
    public static readonly byte[] EventSourceInvalid = AriJson.Message("Invalid event source URI scheme");
    public static readonly byte[] ApplicationNotFound = AriJson.Message("Application not found");
    public static readonly byte[] MissingApp = AriJson.Message("Missing parameter app");
    public static readonly byte[] UpgradeRequired = AriJson.Message("WebSocket upgrade required");
    public static readonly byte[] InvalidPriority = AriJson.Message("Invalid priority");
    public static readonly byte[] InvalidReason = AriJson.Message("Invalid reason for hangup provided");
    public static readonly byte[] ResourceNotFound = AriJson.Message("Resource not found");
    public static readonly byte[] InternalError = AriJson.Message("Internal Server Error");

    public static Task WriteAsync(HttpContext http, int status, byte[] body)
    {
        var response = http.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body).AsTask();
    }

    public static Task NoContent(HttpContext http)
    {
        http.Response.StatusCode = StatusCodes.Status204NoContent;
        return Task.CompletedTask;
    }

    public static Task Unauthorized(HttpContext http)
    {
        http.Response.Headers.WWWAuthenticate = "Basic realm=\"Asterisk REST Interface\"";
        return WriteAsync(http, StatusCodes.Status401Unauthorized, AuthenticationRequired);
    }
}
