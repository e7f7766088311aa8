"""The header rules core gives every scheduler plugin (expyre.header): which options and
resources configured lines already give, and which default lines they leave out."""
from expyre.header import (
    directive_options,
    quoted_directive_value,
    requested_resources,
    unless_given,
)

LINES = ["#SBATCH --nodes=2 -n4", "#SBATCH --job-name='a b'", "#$ -cwd -l h_rt=1:00:00,h_vmem=4G",
         "#PBS -l select=2:ncpus=8:mem=4gb", "#PBS -lwalltime=1:00:00", "echo --not-a-directive"]


def test_options_of_one_prefix_only():
    assert directive_options(LINES, "#SBATCH", attached=True) == {"--nodes", "-n", "--job-name"}
    assert directive_options(LINES, "#$") == {"-cwd", "-l"}


def test_attached_short_options_are_cut_to_their_letter_only_when_asked():
    assert directive_options(["#SBATCH -N2"], "#SBATCH", attached=True) == {"-N"}
    assert directive_options(["#$ -notify"], "#$") == {"-notify"}


def test_resources_in_chunks_and_attached_arguments():
    assert requested_resources(LINES, "#$") == {"h_rt", "h_vmem"}
    assert requested_resources(LINES, "#PBS") == {"select", "ncpus", "mem", "walltime"}


def test_a_line_with_an_unclosed_quote_is_still_read():
    assert directive_options(['#SBATCH --output="a b --mem=1'], "#SBATCH") == {"--output", "--mem"}


def test_default_lines_left_out_when_given_or_unset():
    given = {"--nodes"}
    assert unless_given(given, (("--nodes", "-N"), "#SBATCH --nodes=1"), (("--mem",), "#SBATCH --mem=1K"),
                        (("--time",), None)) == ["#SBATCH --mem=1K"]


def test_directive_values_quoted_when_needed_and_refused_when_impossible():
    assert quoted_directive_value("job.1.out", r"[a-z0-9.]+") == "job.1.out"
    assert quoted_directive_value("job 1.out", r"[a-z0-9.]+") == '"job 1.out"'
    assert quoted_directive_value('job"1', r"[a-z0-9.]+") is None
