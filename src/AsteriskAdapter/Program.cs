using CallRouter.AsteriskAdapter;
using Microsoft.Extensions.Hosting;

// Some library paths block pool threads briefly; a floor of threads keeps deadlines from waiting on thread injection.
ThreadPool.SetMinThreads(64, 64);
var builder = Host.CreateApplicationBuilder(args);
builder.AddAsteriskAdapter();
await builder.Build().RunAsync();
