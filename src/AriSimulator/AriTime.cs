using System.Globalization;

namespace CallRouter.AriSimulator;

/// <summary>Asterisk's timestamp format and hang-up cause texts.</summary>
internal static class AriTime
{
    // Asterisk writes the offset without a colon ("+0000"), unlike ISO 8601 "o".
    private const string Format = "yyyy-MM-dd'T'HH:mm:ss.fff'+0000'";

    public static string Now() => DateTime.UtcNow.ToString(Format, CultureInfo.InvariantCulture);

    public static string CauseText(int cause) => cause switch
    {
        1 => "Unallocated (unassigned) number",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        21 => "Call Rejected",
        27 => "Destination out of order",
        31 => "Normal, unspecified",
        32 => "Normal Clearing",
        34 => "Circuit/channel congestion",
        38 => "Network out of order",
        41 => "Temporary failure",
        127 => "Interworking, unspecified",
        _ => "Unknown",
    };

    /// <summary>Maps DELETE /channels/{id}?reason=… to a Q.850 cause, like res_ari does; null if unknown.</summary>
    public static int? CauseOfReason(string reason) => reason switch
    {
        "normal" => 16,
        "busy" => 17,
        "timeout" => 18,
        "no_answer" => 19,
        "rejected" => 21,
        "unallocated" => 1,
        "normal_unspecified" => 31,
        "congestion" => 34,
        "failure" => 38,
        "interworking" => 127,
        _ => null,
    };
}
