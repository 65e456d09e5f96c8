using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using CallRouter.Common;
using CallRouter.Messages;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace CallRouter.Benchmark;

/// <summary>
/// The broker's own floor: a message relayed across three hops (publisher → relay → relay → receiver, each on its
/// own connection, as three processes would be), with plain RabbitMQ.Client, at a given size and rate.
/// </summary>
public static class RawFloor
{
    public static async Task<List<double>> Measure(BrokerOptions broker, int messageBytes, int rate, int count)
    {
        var queues = new[] { "floor.hop1", "floor.hop2", "floor.hop3" };
        var connections = new List<IConnection>();
        var latencies = new ConcurrentBag<double>();
        var done = new TaskCompletionSource();
        try
        {
            for (var i = 0; i < 4; i++)
                connections.Add(await broker.Connect($"floor {i}"));
            var setup = await connections[0].CreateChannelAsync();
            foreach (var queue in queues)
            {
                await setup.QueueDeclareAsync(queue, durable: false, exclusive: false, autoDelete: true);
                await setup.QueuePurgeAsync(queue);
            }

            for (var hop = 0; hop < 2; hop++)
            {
                var channel = await connections[hop + 1].CreateChannelAsync();
                var next = queues[hop + 1];
                var relay = new AsyncEventingBasicConsumer(channel);
                relay.ReceivedAsync += async (_, d) =>
                {
                    await channel.BasicPublishAsync("", next, false, new BasicProperties(), d.Body);
                    await channel.BasicAckAsync(d.DeliveryTag, false);
                };
                await channel.BasicConsumeAsync(queues[hop], false, relay);
            }
            var receiver = await connections[3].CreateChannelAsync();
            var sink = new AsyncEventingBasicConsumer(receiver);
            sink.ReceivedAsync += async (_, d) =>
            {
                var sent = BinaryPrimitives.ReadInt64LittleEndian(d.Body.Span);
                latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                await receiver.BasicAckAsync(d.DeliveryTag, false);
                if (latencies.Count == count)
                    done.TrySetResult();
            };
            await receiver.BasicConsumeAsync(queues[2], false, sink);

            var publisher = await connections[0].CreateChannelAsync();
            var body = new byte[messageBytes];
            var started = Stopwatch.StartNew();
            for (var i = 0; i < count; i++)
            {
                var due = TimeSpan.FromSeconds((double)i / rate);
                if (due - started.Elapsed is var pause && pause > TimeSpan.Zero)
                    await Task.Delay(pause);
                BinaryPrimitives.WriteInt64LittleEndian(body, Stopwatch.GetTimestamp());
                await publisher.BasicPublishAsync("", queues[0], false, new BasicProperties(), body);
            }
            await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            foreach (var connection in connections)
                await connection.CloseAsync();
        }
        return [.. latencies.Order()];
    }
}
