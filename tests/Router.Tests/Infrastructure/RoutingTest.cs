using Xunit;

namespace CallRouter.Tests.Infrastructure;

/// <summary>A test class that gets a fresh routing stack (own vhost, simulator, router, adapter) for each test.</summary>
public abstract class RoutingTest : IAsyncLifetime
{
    protected RoutingStack Stack { get; } = new();

    public Task InitializeAsync() => Stack.InitializeAsync();

    public Task DisposeAsync() => Stack.DisposeAsync();
}
