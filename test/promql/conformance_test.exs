defmodule TimelessMetrics.PromQL.ConformanceTest do
  # The runner's own tests use TimelessMetrics.FakePromQL (test/support), a tiny
  # engine with the evaluator's contract; the suite run against the real
  # TimelessMetrics.PromQL is the "conformance suite" describe block at the end.
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  alias TimelessMetrics.PromQL.Conformance
  alias TimelessMetrics.PromQL.Conformance.Script

  doctest TimelessMetrics.PromQL.Conformance
  doctest TimelessMetrics.PromQL.Conformance.Script

  @project_root Path.dirname(Mix.Project.project_file())
  @testdata Path.expand("../shared/promql-conformance/testdata", @project_root)
  @baseline_file Path.expand("conformance_baseline.txt", __DIR__)
  @fake [engine: TimelessMetrics.FakePromQL]

  defp parse!(text) do
    {:ok, commands} = Script.parse(text)
    commands
  end

  defp eval!(text), do: text |> parse!() |> Enum.find(&(&1.cmd == :eval))

  defp run(text, opts \\ @fake), do: Conformance.run_commands("inline.test", parse!(text), opts)

  describe "script parser: load" do
    test "value expansions" do
      [load] = parse!("load 1m\n  m{a=\"x\"} 1+2x2 5-1x1 7x2 _ _x2 stale -Inf +NaN .5 1e3 0+0.1x3\n")

      assert [{%{"__name__" => "m", "a" => "x"}, samples}] = load.series
      values = Enum.map(samples, &elem(&1, 1))
      times = Enum.map(samples, &elem(&1, 0))

      # 0.1 is added three times in float64, as upstream does (0.30000000000000004)
      assert values == [1.0, 3.0, 5.0, 5.0, 4.0, 7.0, 7.0, 7.0, :stale, :neg_inf, :nan, 0.5, 1000.0, 0.0, 0.1, 0.2, 0.1 + 0.1 + 0.1]
      # `_` leaves one slot empty, `_x2` two: the stale marker sits at slot 11
      assert Enum.at(times, 8) == 11 * 60_000
      assert List.last(times) == 19 * 60_000
    end

    test "label sets: quotes, escapes, metric name only, __name__ label, trailing comma" do
      [load] =
        parse!("""
        load 5m
          a 1
          {__name__="b", x='q\\'s'} 2
          c{y=`raw\\n`, z="t\\u00e9\\x41",} 3
        """)

      assert Enum.map(load.series, &elem(&1, 0)) == [
               %{"__name__" => "a"},
               %{"__name__" => "b", "x" => "q's"},
               %{"__name__" => "c", "y" => "raw\\n", "z" => "téA"}
             ]
    end

    test "the same label set twice in one load: the later line wins" do
      [load] = parse!("load 10s\n  m 1 2\n  m 5\n")
      assert load.series == [{%{"__name__" => "m"}, [{0, 5.0}]}]
      assert load.interval_ms == 10_000
    end

    test "native histogram items" do
      [load] = parse!("load 1m\n  h {{schema:0 sum:5 count:4 buckets:[1 2 1]}}+{{sum:1 count:1 buckets:[1]}}x1 {{}}\n")
      [{_, [{0, {:histogram, h0}}, {60_000, {:histogram, h1}}, {120_000, {:histogram, empty}}]}] = load.series
      assert {h0.sum, h0.count, h0.buckets} == {5.0, 4.0, %{0 => 1.0, 1 => 2.0, 2 => 1.0}}
      assert {h1.sum, h1.count, h1.buckets} == {6.0, 5.0, %{0 => 2.0, 1 => 2.0, 2 => 1.0}}
      assert empty.count == 0.0
    end

    test "bad series and bad commands are format errors with their line" do
      assert {:error, %{line: 2, message: "bad series" <> _}} = Script.parse("load 5m\n  m{a=~\"x\"} 1\n")
      assert {:error, %{line: 2, message: "bad series" <> _}} = Script.parse("load 5m\n  m Infx3\n")
      assert {:error, %{line: 1, message: "invalid step definition" <> _}} = Script.parse("load 5q\n")
      assert {:error, %{line: 3, message: "invalid command" <> _}} = Script.parse("clear\n\nfoo bar\n")
    end
  end

  describe "script parser: eval" do
    test "instant, with a time, expectations and a comment ending the block" do
      e = eval!("eval instant at 1h30m sum(x)\n  {a=\"1\"} 3\n  {} 4\n# done\n  CLEAR\n")
      assert {e.range, e.time_ms, e.query, e.fail, e.ordered} == {false, 5_400_000, "sum(x)", false, false}
      assert [%{pos: 1, labels: %{"a" => "1"}, values: [3.0]}, %{pos: 2, labels: %{}, values: [4.0]}] = e.series
      assert e.lines == [~s|{a="1"} 3|, "{} 4"]
    end

    test "scalar expectation, eval_ordered, eval_fail with message or regexp" do
      assert %{scalar: :inf, series: []} = eval!("eval instant at 0 1/0\n  +Inf\n")
      assert %{ordered: true} = eval!("eval_ordered instant at 5m sort(x)\n  x 1\n")
      # the command word is case-insensitive, but upstream's eval/load patterns are not
      assert {:error, %{message: "invalid evaluation command" <> _}} = Script.parse("EVAL instant at 5m x\n")
      assert %{fail: true, fail_message: "boom here"} = eval!("eval_fail instant at 0m x\n  expected_fail_message boom here\n")
      assert %{fail: true, fail_regexp: re} = eval!("eval_fail instant at 0m x\n  expected_fail_regexp bo+m\n")
      assert Regex.match?(re, "booom")
      assert %{scalar: nil, series: []} = eval!("eval instant at 10m absent(x)\n")
    end

    test "range eval" do
      e = eval!("eval range from 0 to 10m step 5m x\n  x{a=\"b\"} 1 _ 3\n")
      assert {e.range, e.start_ms, e.end_ms, e.step_ms} == {true, 0, 600_000, 300_000}
      assert [%{values: [1.0, :omitted, 3.0]}] = e.series
    end

    test "format errors" do
      assert {:error, %{line: 2, message: msg}} = Script.parse("eval instant at 0m x\n  x 1 2\n")
      assert msg =~ "expecting multiple values in instant evaluation not allowed"
      assert {:error, %{message: "invalid test definition, end timestamp (1m) is before start timestamp (2m)"}} =
               Script.parse("eval range from 2m to 1m step 1m x\n")

      assert {:error, %{message: "invalid evaluation command" <> _}} = Script.parse("eval_ordered range from 0 to 1m step 1m x\n")
      assert {:error, %{message: "invalid timestamp definition" <> _}} = Script.parse("eval instant at 1.5m x\n")
    end
  end

  describe "comparison" do
    test "vectors: label sets exactly, order only when ordered" do
      e = eval!("eval instant at 0 x\n  x{a=\"1\"} 1\n  x{a=\"2\"} 2\n")
      assert :ok = Conformance.compare(e, {:vector, [{%{"__name__" => "x", "a" => "2"}, 2.0000001}, {%{"__name__" => "x", "a" => "1"}, 1.0}]})
      assert {:error, "unexpected metric {a=\"2\"}" <> _} = Conformance.compare(e, {:vector, [{%{"a" => "2"}, 2.0}, {%{"__name__" => "x", "a" => "1"}, 1.0}]})
      assert {:error, "expected metric x{a=\"2\"} with 2 not found"} = Conformance.compare(e, {:vector, [{%{"__name__" => "x", "a" => "1"}, 1.0}]})
      assert {:error, "expected 2 for x{a=\"2\"} but got 2.1"} =
               Conformance.compare(e, {:vector, [{%{"__name__" => "x", "a" => "1"}, 1.0}, {%{"__name__" => "x", "a" => "2"}, 2.1}]})

      ordered = %{e | ordered: true}
      assert {:error, "expected metric x{a=\"2\"} with 2 at position 2 but was at 1"} =
               Conformance.compare(ordered, {:vector, [{%{"__name__" => "x", "a" => "2"}, 2.0}, {%{"__name__" => "x", "a" => "1"}, 1.0}]})
    end

    test "scalars, empty expectations, NaN" do
      scalar = eval!("eval instant at 0 0/0\n  NaN\n")
      assert :ok = Conformance.compare(scalar, {:scalar, :nan})
      assert {:error, _} = Conformance.compare(scalar, {:scalar, 1.0})
      assert {:error, "expected scalar NaN but got a vector"} = Conformance.compare(scalar, {:vector, []})

      empty = eval!("eval instant at 0 x\n")
      assert :ok = Conformance.compare(empty, {:vector, []})
      assert {:error, _} = Conformance.compare(empty, {:vector, [{%{}, 1.0}]})
      assert {:error, "expected vector or matrix result, but got scalar 1"} = Conformance.compare(empty, {:scalar, 1.0})
    end

    test "matrices: sorted, timestamps from start and step, omitted points" do
      e = eval!("eval range from 0 to 2m step 1m x\n  x{a=\"1\"} 1 _ 3\n  x{a=\"2\"} 1x2\n")
      a1 = {%{"__name__" => "x", "a" => "1"}, [{0, 1.0}, {120_000, 3.0}]}
      a2 = {%{"__name__" => "x", "a" => "2"}, [{0, 1.0}, {60_000, 1.0}, {120_000, 1.0}]}
      assert :ok = Conformance.compare(e, {:matrix, [a1, a2]})
      assert {:error, "matrix results should always be sorted" <> _} = Conformance.compare(e, {:matrix, [a2, a1]})
      assert {:error, "expected 2 float points" <> _} = Conformance.compare(e, {:matrix, [{elem(a1, 0), [{0, 1.0}]}, a2]})
      assert {:error, "expected float value at index 1 for x{a=\"1\"} to have timestamp 120000" <> _} =
               Conformance.compare(e, {:matrix, [{elem(a1, 0), [{0, 1.0}, {60_000, 3.0}]}, a2]})
    end
  end

  describe "runner (with the fake engine)" do
    test "passes and fails cases, checks eval_fail, range mode and staleness" do
      results =
        run("""
        load 1m
          up{job="a"} 1 2 3
          up{job="b"} 5 stale

        eval instant at 2m up
          up{job="a"} 3

        eval instant at 2m up
          up{job="a"} 4

        eval instant at 30s up
          up{job="a"} 1
          up{job="b"} 5

        eval_fail instant at 0 rate(up[1m])

        eval_fail instant at 0 up

        eval_fail instant at 0 fake_execution
          expected_fail_message something else

        eval instant at 0 -Inf
          -Inf

        eval range from 0 to 2m step 1m up{job="a"}
          up{job="a"} 1+1x2

        clear

        eval instant at 0 up

        eval instant at 0 1 +
          1
        """)

      assert Enum.map(results, &{&1.line, &1.status}) == [
               {5, :passed},
               {8, :failed},
               {11, :passed},
               {15, :passed},
               {17, :failed},
               {19, :failed},
               {22, :passed},
               {25, :passed},
               {30, :passed},
               {32, :failed}
             ]

      [_, wrong, _, _, no_error, message, _, _, _, unparsable] = results
      assert wrong.reason == ~s|expected 4 for up{job="a"} but got 3|
      assert wrong.got == ~s|up{job="a"} 3|
      assert wrong.expected == [~s|up{job="a"} 4|]
      assert no_error.reason == "expected an error evaluating the query but got none"
      assert message.reason =~ ~s|expected error "something else" evaluating the query but got "fake execution error"|
      assert unparsable.reason =~ "query does not parse: 1:4: parse error"
    end

    test "the range-mode cross-check catches an engine whose range answers differ" do
      script = "load 1m\n  up{a=\"1\"} 1 2 3\n  up{a=\"2\"} 1 2 3\n\neval instant at 1m up\n  up{a=\"1\"} 2\n  up{a=\"2\"} 2\n"
      assert [%{status: :passed}] = run(script)
      assert [%{status: :failed, reason: "range mode" <> reason}] = run(script, engine: __MODULE__.UnsortedRange)
      assert reason =~ "matrix results should always be sorted by labels"
      assert [%{status: :failed, reason: "range mode" <> _}] = run(script, engine: __MODULE__.WrongRange)
      assert [%{status: :passed}] = run(script, engine: __MODULE__.WrongRange, range_check: false)
    end

    test "an engine that raises or hangs fails the case, not the run" do
      script = "eval instant at 0 1\n  1\n"
      assert [%{status: :failed, reason: "error evaluating the query: raised" <> _}] = run(script, engine: __MODULE__.Raising)
      assert [%{status: :failed, reason: "error evaluating the query: no answer within 50 ms"}] =
               run(script, engine: __MODULE__.Hanging, case_timeout_ms: 50)
    end

    test "skips are by file, line and exact query" do
      text = String.duplicate("\n", 804) <> "eval instant at 70s mad_over_time(metric[70s])\n"
      assert [%{status: :skipped, reason: "experimental function" <> _}] = Conformance.run_commands("functions.test", parse!(text), @fake)
      assert [%{status: :failed}] = Conformance.run_commands("other.test", parse!(text), @fake)
      moved = "\n" <> text
      assert [%{status: :failed}] = Conformance.run_commands("functions.test", parse!(moved), @fake)
    end

    test "report: table, skipped cases, verbose failures and the totals line" do
      dir = Path.join(System.tmp_dir!(), "conformance_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      on_exit(fn -> File.rm_rf!(dir) end)
      File.write!(Path.join(dir, "a.test"), "load 1m\n  up 1\n\neval instant at 0 up\n  up 1\n\neval instant at 0 up\n  up 2\n")
      File.write!(Path.join(dir, "native_histograms.test"), "load 1m\n  h {{count:1}}\n\neval instant at 0 h\n  h {{count:1}}\n")

      {:ok, summary} = Conformance.run_dir(dir, @fake)
      assert {summary.passed, summary.failed, summary.skipped} == {1, 1, 1}

      report = Conformance.report(summary, verbose: true)
      lines = String.split(report, "\n")
      assert List.last(lines) == "1 passed, 1 failed, 1 skipped"
      assert Enum.any?(lines, &Regex.match?(~r/^a\.test +1 +1 +0$/, &1))
      assert "  native_histograms.test: the whole file (1 cases): native histograms are not stored by TimelessMetrics" in lines
      assert report =~ "FAIL a.test:7\n  query:    up\n"
      assert report =~ "  expected: up 2\n  got:      up 1"
      refute Conformance.report(summary) =~ "FAIL"

      assert {:error, "no *.test files in " <> _} = Conformance.run_dir(Path.join(dir, "none"), @fake)
      assert {:error, "Enum is not available" <> _} = Conformance.run_dir(dir, engine: Enum)
    end
  end

  describe "mix timeless.promql_conformance" do
    test "without a folder it says so and runs nothing" do
      out = capture_io(fn -> assert :ok = Mix.Tasks.Timeless.PromqlConformance.run([]) end)
      assert out =~ "No folder given"
    end

    test "prints the per-file table and the totals line" do
      dir = Path.join(System.tmp_dir!(), "conformance_task_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      on_exit(fn -> File.rm_rf!(dir) end)
      File.write!(Path.join(dir, "b.test"), "eval instant at 0 2\n  2\n\neval instant at 0 3\n  2\n")

      out = capture_io(fn -> Mix.Tasks.Timeless.PromqlConformance.run([dir, "--engine", "TimelessMetrics.FakePromQL", "--verbose"]) end)
      assert out =~ ~r/^b\.test +1 +1 +0$/m
      assert out =~ "FAIL b.test:4"
      assert out |> String.trim_trailing() |> String.ends_with?("\n1 passed, 1 failed")
    end
  end

  describe "conformance suite (Prometheus v2.53 test scripts)" do
    @describetag timeout: 900_000

    @data_skip (if File.dir?(@testdata), do: nil, else: "no conformance data at #{@testdata}")
    if @data_skip, do: IO.puts("PromQL conformance suite skipped: #{@data_skip}")
    if @data_skip, do: @tag(skip: @data_skip)

    test "every skip-list entry names an existing case" do
      for {file, line, query, _reason} <- Conformance.skips(), line != :all do
        {:ok, commands} = Script.parse_file(Path.join(@testdata, file))
        assert Enum.any?(commands, &(&1[:line] == line and &1[:query] == query)), "#{file}:#{line} is not `#{query}`"
      end

      assert File.exists?(Path.join(@testdata, "native_histograms.test"))
    end

    if @data_skip, do: @tag(skip: @data_skip)

    test "the pass count does not fall below the baseline" do
      baseline = @baseline_file |> File.read!() |> String.trim() |> String.to_integer()
      {:ok, summary} = Conformance.run_dir(@testdata)
      IO.puts("\n" <> Conformance.report(summary))

      assert summary.passed >= baseline,
             "PromQL conformance fell to #{summary.passed} passed (baseline #{baseline}); " <>
               "run `mix timeless.promql_conformance #{Path.relative_to(@testdata, @project_root)} --verbose` to see the failures"

      if summary.passed > baseline,
        do: IO.puts("PromQL conformance improved: raise #{Path.relative_to(@baseline_file, @project_root)} to #{summary.passed}")
    end

    test "the baseline file holds a non-negative integer" do
      assert {n, ""} = @baseline_file |> File.read!() |> String.trim() |> Integer.parse()
      assert n >= 0
    end
  end

  # ------------------------------------------------------------------ engines for the runner's tests

  defmodule UnsortedRange do
    @moduledoc false
    defdelegate instant(store, q, t, opts), to: TimelessMetrics.FakePromQL

    def range(store, q, s, e, step, opts) do
      {:ok, result} = TimelessMetrics.FakePromQL.range(store, q, s, e, step, opts)
      {:ok, %{result | result: Enum.reverse(result.result)}}
    end
  end

  defmodule WrongRange do
    @moduledoc false
    defdelegate instant(store, q, t, opts), to: TimelessMetrics.FakePromQL

    def range(_store, _q, s, _e, _step, _opts),
      do: {:ok, %{type: :matrix, result: [%{metric: %{"__name__" => "up"}, values: [{s + 60_000, 7.0}]}]}}
  end

  defmodule Raising do
    @moduledoc false
    def instant(_, _, _, _), do: raise("kaput")
    def range(_, _, _, _, _, _), do: raise("kaput")
  end

  defmodule Hanging do
    @moduledoc false
    def instant(_, _, _, _), do: Process.sleep(:infinity)
    def range(_, _, _, _, _, _), do: Process.sleep(:infinity)
  end
end
