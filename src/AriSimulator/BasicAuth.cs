using System.Text;
using Microsoft.AspNetCore.Http;

namespace CallRouter.AriSimulator;

/// <summary>Checks ARI credentials: HTTP Basic auth or the api_key=user:pass query parameter.</summary>
internal sealed class BasicAuth(string user, string password)
{
    private readonly string _apiKey = user + ":" + password;
    private readonly string _expectedHeader = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + password));

    public bool IsAuthorized(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.Length > 0 && (header == _expectedHeader || DecodeBasic(header) == _apiKey))
        {
            return true;
        }

        return request.Query.TryGetValue("api_key", out var key) && key.ToString() == _apiKey;
    }

    private static string? DecodeBasic(string header)
    {
        const string scheme = "Basic ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        try
        {
            return Encoding.UTF8.GetString(Convert.FromBase64String(header[scheme.Length..].Trim()));
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
