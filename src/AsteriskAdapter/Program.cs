using CallRouter.AsteriskAdapter;
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.AddAsteriskAdapter();
await builder.Build().RunAsync();
