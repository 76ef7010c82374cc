"""The contract syscall suite (tests/contract/test_syscalls.py) on a FAT mount.

Every test of the suite runs here against msdosfs (FAT32, mounted with
``fmask=133``); the ones FAT cannot pass are listed in DIFFERENCES, each with
the reason, and run as strict xfails: a change that makes one pass must take
it off the list. Everything not listed behaves as on the host's tmpfs."""

from __future__ import annotations

import pytest

from tests.contract.test_syscalls import *  # noqa: F403

SYMLINKS = "FAT has no symbolic links: symlink() is EPERM, as on Linux's vfat"
HARD_LINKS = "FAT has one name per file: link() is EPERM, as on Linux's vfat"
NODES = "FAT has no device nodes, FIFOs or sockets: mknod() of them is EPERM, as on vfat"
MODES = ("FAT keeps no permission bits: files are 0777 & ~fmask, directories 0777 & "
         "~dmask; chmod only toggles the read-only attribute and ignores other modes, "
         "and the mode given to open/mkdir/mknod is not kept (vfat)")
SPECIAL_BITS = "setuid, setgid and sticky bits do not exist on FAT: chmod with them is EPERM"
OWNERS = "every file belongs to the mount's uid/gid: chown to another owner is EPERM (vfat)"
TIMES = ("FAT keeps the modification time to 2 s, the access time as a day and nothing "
         "before 1980: the nanoseconds the test set do not come back")

DIFFERENCES: dict[str, str] = {
    **dict.fromkeys([
        "test_open_creat_excl_on_dangling_symlink_is_eexist",
        "test_open_creat_through_dangling_symlink_creates_target",
        "test_open_nofollow_on_symlink_is_eloop",
        "test_open_nofollow_only_applies_to_last_component",
        "test_open_creat_excl_nofollow_on_symlink_is_eexist", "test_truncate_follows_symlink",
        "test_directory_nlink_counts_subdirectories",
        "test_symlink_lstat_size_is_target_length",
        "test_symlink_size_counts_bytes_not_characters",
        "test_stat_follows_symlink_lstat_does_not", "test_mkdir_on_dangling_symlink_is_eexist",
        "test_rmdir_symlink_to_directory_is_enotdir", "test_unlink_symlink_removes_link_only",
        "test_unlink_symlink_to_dir", "test_rename_symlink_renames_link",
        "test_link_by_default_links_the_symlink_itself_on_linux",
        "test_link_with_dir_fd_follows_symlink", "test_link_nofollow_links_the_symlink",
        "test_readlink_returns_target", "test_readlink_does_not_follow_last_component",
        "test_symlink_relative_resolves_from_link_directory",
        "test_symlink_absolute_resolves_in_namespace",
        "test_symlink_to_directory_in_middle_of_path", "test_dangling_symlink",
        "test_symlink_loop_is_eloop", "test_forty_chained_symlinks_are_followed",
        "test_forty_one_chained_symlinks_is_eloop",
        "test_symlinks_counted_across_path_components",
        "test_trailing_slash_on_symlink_to_directory_follows",
        "test_trailing_slash_on_symlink_to_file_is_enotdir", "test_symlink_target_max_length",
        "test_symlink_to_dotdot", "test_dotdot_after_symlink_is_physical",
        "test_listdir_names", "test_listdir_follows_symlink", "test_scandir_entries",
        "test_scandir_entry_stat", "test_chmod_follows_symlink",
        "test_chown_follows_symlink_lchown_does_not", "test_utime_follow_symlinks",
        "test_dir_fd_symlink_readlink_lstat", "test_chdir_through_symlink_gives_physical_cwd",
        "test_open_write_through_symlink_writes_target", "test_symlink_mode_ignores_umask",
        "test_mkdir_through_dangling_symlink_parent_is_enoent",
        "test_mkdir_through_symlink_to_file_is_enotdir",
        "test_mkdir_through_symlink_to_directory",
        "test_rename_file_over_symlink_replaces_link",
        "test_rename_symlink_to_directory_over_directory_is_eisdir",
        "test_rename_directory_over_symlink_is_enotdir", "test_readlink_bytes_with_dir_fd",
    ], SYMLINKS),
    **dict.fromkeys([
        "test_unlink_one_hard_link_keeps_other", "test_rename_between_hard_links_is_noop",
        "test_link_shares_inode_and_counts", "test_link_updates_ctime_not_mtime",
        "test_dir_fd_link_chmod_chown_utime_access_mknod",
        "test_rename_over_hard_link_of_other_file", "test_bytes_and_pathlike_paths_everywhere",
        "test_hard_link_count_survives_rename",
    ], HARD_LINKS),
    **dict.fromkeys([
        "test_mknod_fifo", "test_mknod_socket", "test_mknod_char_device",
        "test_mknod_block_device", "test_special_files_in_listings", "test_mknod_applies_umask",
        "test_scandir_special_is_dir_false",
    ], NODES),
    **dict.fromkeys([
        "test_open_creat_existing_keeps_mode_and_data",
        "test_open_creat_applies_umask_and_keeps_setuid", "test_umask_changes_creation_mode",
        "test_stat_file_fields", "test_new_directory_mode", "test_chmod_sets_mode_bits[0]",
        "test_fchmod", "test_mknod_default_makes_regular_file",
        "test_access_root_bypasses_rw_but_not_exec", "test_chmod_ignores_file_type_bits",
        "test_mkdir_mode_zero",
    ], MODES),
    **dict.fromkeys([
        "test_mkdir_keeps_sticky_drops_setgid", "test_chmod_sets_mode_bits[2541]",
        "test_chmod_sets_mode_bits[1517]", "test_chmod_sets_mode_bits[1023]",
        "test_chmod_sets_mode_bits[4095]", "test_chmod_directory",
        "test_chown_clears_setuid_setgid_even_for_root",
        "test_chown_keeps_setgid_without_group_exec", "test_chown_directory_keeps_setgid",
    ], SPECIAL_BITS),
    **dict.fromkeys(["test_chown_sets_owner", "test_fchown"], OWNERS),
    **dict.fromkeys([
        "test_write_updates_mtime_and_ctime", "test_read_does_not_change_mtime",
        "test_chmod_does_not_change_mtime", "test_rename_keeps_file_mtime",
        "test_utime_times_seconds", "test_utime_ns", "test_utime_directory",
        "test_utime_negative_and_large_times",
    ], TIMES),
}


@pytest.fixture(autouse=True)
def _fat_differences(request: pytest.FixtureRequest) -> None:
    reason = DIFFERENCES.get(request.node.name)
    if reason is not None:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))


def test_differences_name_real_tests() -> None:
    names = {n for n in globals() if n.startswith("test_")}
    for key in DIFFERENCES:
        assert key.split("[")[0] in names, key
