// The parts' floor: what one process pays in CPU per routed call for the traffic alone, with no work in between.
// Broker: a "call" is 5 messages in and 4 out, the router's share per call (a broadcast, 3 claims and a record in; 3
// answers and a decision out), consumed with MassTransit as the router does, or with RabbitMQ.Client alone. ARI: the
// adapter's 3 REST requests per call, with an HttpClient as the adapter's, against the simulator (answers, no events).
// Each part runs in a child process of its own, whose CPU is read after a warm-up; the load comes from this process.
// docs/benchmarks.md says how it is used.
//
//   dotnet src/TransportFloor/bin/Release/net10.0/CallRouter.TransportFloor.dll [--rate N] [--seconds S]
using CallRouter.Common;
using CallRouter.TransportFloor;

var broker = new BrokerOptions();
if (args is ["--consume", var kind])
{
    await Consumers.Run(kind, broker);
    return 0;
}
if (args is ["--ari", var url, var childRate, var childSeconds])
{
    await AriRequests.Run(new Uri(url), int.Parse(childRate), int.Parse(childSeconds));
    return 0;
}

var rate = 300;
var seconds = 20;
for (var i = 0; i + 1 < args.Length; i += 2)
{
    if (args[i] == "--rate" && int.TryParse(args[i + 1], out var r) && r > 0)
        rate = r;
    else if (args[i] == "--seconds" && int.TryParse(args[i + 1], out var s) && s > 0)
        seconds = s;
    else
    {
        Console.Error.WriteLine("usage: CallRouter.TransportFloor [--rate CALLS_PER_SECOND] [--seconds S]");
        return 2;
    }
}

Console.WriteLine($"Floor at {rate} calls/s for {seconds} s (after a {Consumers.WarmupSeconds} s warm-up).");
Console.WriteLine("| process | traffic per call | CPU ms per call |");
Console.WriteLine("|---|---|---|");
foreach (var consumer in Consumers.Kinds)
    Console.WriteLine($"| {consumer} | 5 messages in, 4 out | {await Consumers.Measure(consumer, broker, rate, seconds):F3} |");
Console.WriteLine($"| ari-http-client | {AriRequests.PerCall} REST requests | {await AriRequests.Measure(rate, seconds):F3} |");
return 0;
