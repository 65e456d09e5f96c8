using CallRouter.Common;
using Xunit;

namespace CallRouter.Tests.Unit;

/// <summary><see cref="BrokerConnection"/>: every process's plain RabbitMQ connection is made the same way from <see cref="BrokerOptions"/>.</summary>
public sealed class BrokerConnectionTests
{
    private static BrokerOptions Options(string hosts = "") => new()
    {
        Host = "rabbit.local", Port = 5673, VirtualHost = "calls", User = "router", Password = "secret", Hosts = hosts,
        Heartbeat = TimeSpan.FromSeconds(7),
    };

    [Fact]
    public void The_factory_carries_the_options_the_name_and_fast_recovery()
    {
        var factory = Options().Factory("router cdr writer", dispatchConcurrency: 16);

        Assert.Equal(("rabbit.local", 5673, "calls", "router", "secret"), (factory.HostName, factory.Port, factory.VirtualHost, factory.UserName, factory.Password));
        Assert.Equal("router cdr writer", factory.ClientProvidedName);
        Assert.Equal(TimeSpan.FromSeconds(7), factory.RequestedHeartbeat);
        Assert.True(factory.AutomaticRecoveryEnabled);
        Assert.True(factory.TopologyRecoveryEnabled);
        Assert.Equal(TimeSpan.FromSeconds(1), factory.NetworkRecoveryInterval);
        Assert.Equal(16, factory.ConsumerDispatchConcurrency);
        Assert.Equal(1, Options().Factory("x").ConsumerDispatchConcurrency);
    }

    [Fact]
    public void One_node_without_a_cluster_list()
    {
        var endpoint = Assert.Single(Options().Endpoints());

        Assert.Equal(("rabbit.local", 5673), (endpoint.HostName, endpoint.Port));
    }

    [Fact]
    public void A_cluster_list_gives_every_node_in_order_with_the_default_port_where_none_is_given_and_the_factory_starts_at_the_first()
    {
        var options = Options(" node-a:5680 , node-b,node-c:5690");

        Assert.Equal([("node-a", 5680), ("node-b", 5673), ("node-c", 5690)], options.Endpoints().Select(e => (e.HostName, e.Port)));
        Assert.Equal(("node-a", 5680), (options.Factory("x").HostName, options.Factory("x").Port));
    }
}
