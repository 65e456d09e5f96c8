# The Router (src/Router), built with the same command as outside Docker: dotnet publish src/Router -c Release.
# Built from the repository root: docker compose -f infra/docker-compose.yml build (or docker build -f infra/docker/router.Dockerfile .)
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /repo
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/ src/
RUN dotnet publish src/Router -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
USER $APP_UID
ENTRYPOINT ["dotnet", "CallRouter.Router.dll"]
