import Config

config :logger, :console, format: "$time [$level] $message\n"

if config_env() == :test do
  config :logger, level: :warning
end
