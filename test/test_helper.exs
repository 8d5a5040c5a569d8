ExUnit.start(exclude: [:bench])
