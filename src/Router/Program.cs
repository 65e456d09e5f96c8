using CallRouter.Router;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.AddRouter();
await builder.Build().RunAsync();
