Code.require_file("ingest_helpers.exs", __DIR__)

defmodule TimelessMetrics.Ingest.DecompressTest do
  use ExUnit.Case, async: true

  import TimelessMetrics.IngestHelpers

  alias TimelessMetrics.Ingest.Decompress

  doctest TimelessMetrics.Ingest.Decompress

  @text :binary.copy("cpu,host=a usage=1.5 1700000000000000000\n", 500)

  test "gzip, x-gzip, identity and absent encodings" do
    assert Decompress.decode("gzip", :zlib.gzip(@text), 1_000_000) == {:ok, @text}
    assert Decompress.decode("X-GZIP", :zlib.gzip(@text), 1_000_000) == {:ok, @text}
    assert Decompress.decode(nil, @text, 1_000_000) == {:ok, @text}
    assert Decompress.decode("identity", @text, 1_000_000) == {:ok, @text}
  end

  test "deflate as zlib (RFC 1950) and as raw deflate (RFC 1951)" do
    assert Decompress.decode("deflate", :zlib.compress(@text), 1_000_000) == {:ok, @text}
    assert Decompress.decode("deflate", :zlib.zip(@text), 1_000_000) == {:ok, @text}
  end

  test "output exactly at the cap passes, one byte over does not" do
    size = byte_size(@text)
    assert {:ok, _} = Decompress.decode("gzip", :zlib.gzip(@text), size)
    assert {:error, {:too_large, msg}} = Decompress.decode("gzip", :zlib.gzip(@text), size - 1)
    assert msg =~ "gzip"
    assert {:error, {:too_large, _}} = Decompress.decode(nil, @text, size - 1)
  end

  test "garbage and truncated data are bad input naming the encoding" do
    assert {:error, {:bad_input, msg}} = Decompress.decode("gzip", "plain text", 1000)
    assert msg =~ "gzip"
    gz = :zlib.gzip(@text)
    assert {:error, {:bad_input, _}} = Decompress.decode("gzip", binary_part(gz, 0, byte_size(gz) - 10), 1_000_000)
    assert {:error, {:bad_input, msg}} = Decompress.decode("deflate", "\xff\xff\xff\xff", 1000)
    assert msg =~ "deflate"
  end

  test "a 200 MB bomb stops at the 1 MiB cap, fast" do
    bomb = gzip_zeros(200)
    {us, result} = :timer.tc(fn -> Decompress.decode("gzip", bomb, 1_048_576) end)
    assert {:error, {:too_large, _}} = result
    assert us < 1_000_000
  end

  test "an unknown encoding is unsupported, naming it" do
    assert {:error, {:unsupported, msg}} = Decompress.decode("br", "x", 10)
    assert msg =~ "br"
  end

  test "truncated gzip is bad input" do
    truncated = binary_part(:zlib.gzip(String.duplicate("x", 5000)), 0, 20)
    assert {:error, {:bad_input, msg}} = Decompress.decode("gzip", truncated, 100_000)
    assert msg =~ "gzip"
  end

  test "snappy block format" do
    # the snappy block format of "hello": length varint 5, literal tag (5-1)<<2
    assert Decompress.decode("snappy", <<5, 16, "hello">>, 100) == {:ok, "hello"}
    assert {:error, {:bad_input, msg}} = Decompress.decode("snappy", <<5, 0xFF, 0xFF>>, 100)
    assert msg =~ "snappy"
    assert {:error, {:too_large, _}} = Decompress.decode("snappy", <<5, 16, "hello">>, 4)
  end
end

defmodule TimelessMetrics.Ingest.ParamsTest do
  use ExUnit.Case, async: true

  alias TimelessMetrics.Ingest.Params

  doctest TimelessMetrics.Ingest.Params

  test "defaults: no labels, receive time, ns for Influx and ms for the others" do
    assert Params.parse(:influx, %{}, 42) == {:ok, %{extra_labels: [], default_ts_ms: 42, precision: :ns}}
    assert Params.parse(:prometheus_text, %{}, 42) == {:ok, %{extra_labels: [], default_ts_ms: 42, precision: :ms}}
  end

  test "every Influx precision spelling" do
    for {p, unit} <- [{"n", :ns}, {"ns", :ns}, {"u", :us}, {"us", :us}, {"µ", :us}, {"ms", :ms}, {"s", :s}] do
      assert {:ok, %{precision: ^unit}} = Params.parse(:influx, %{"precision" => p}, 0)
    end

    assert {:error, msg} = Params.parse(:influx, %{"precision" => "m"}, 0)
    assert msg =~ "precision" and msg =~ "not supported"
  end

  test "precision is ignored outside Influx" do
    assert {:ok, %{precision: :ms}} = Params.parse(:vm_json, %{"precision" => "nonsense"}, 0)
  end

  test "timestamp in seconds (with a fraction) or milliseconds" do
    assert {:ok, %{default_ts_ms: 1_700_000_000_000}} = Params.parse(:vm_json, %{"timestamp" => "1700000000"}, 0)
    assert {:ok, %{default_ts_ms: 1_700_000_000_500}} = Params.parse(:vm_json, %{"timestamp" => "1700000000.5"}, 0)
    assert {:ok, %{default_ts_ms: 1_700_000_000_123}} = Params.parse(:vm_json, %{"timestamp" => "1700000000123"}, 0)
    assert {:error, msg} = Params.parse(:vm_json, %{"timestamp" => "-1"}, 0)
    assert msg =~ "timestamp"
  end

  test "the last of a repeated single parameter wins; an empty db adds nothing" do
    assert {:ok, %{precision: :s, extra_labels: []}} = Params.parse(:influx, %{"precision" => ["ms", "s"], "db" => ""}, 0)
  end
end
