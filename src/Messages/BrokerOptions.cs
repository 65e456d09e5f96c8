namespace CallRouter.Messages;

/// <summary>Where the RabbitMQ broker is. Bound from the "Broker" section; environment variables Broker__Host etc. or RABBITMQ_HOST etc.</summary>
public sealed class BrokerOptions
{
    public const string Section = "Broker";

    public string Host { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_HOST") ?? "localhost";
    public int Port { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("RABBITMQ_PORT"), out var port) ? port : 5672;
    public string VirtualHost { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_VHOST") ?? "/";
    public string User { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_USER") ?? "guest";
    public string Password { get; set; } = Environment.GetEnvironmentVariable("RABBITMQ_PASSWORD") ?? "guest";
}
