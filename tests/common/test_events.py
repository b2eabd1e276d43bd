import json
import time
from datetime import datetime

import boto3
import pytest
from boto3.dynamodb.types import Binary

from pipeline_common.events import (
    EventError,
    S3Object,
    client_image,
    is_s3_notification,
    s3_objects,
    sqs_batch_response,
    stream_batch_response,
    stream_record,
)

KEY = "in/sales 2024/ünï+code.csv"


def _s3_record(key: str = "in/sales+2024/%C3%BCn%C3%AF%2Bcode.csv") -> dict:
    return {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": "landing"},
            "object": {"key": key, "size": 12, "eTag": "abc", "versionId": "v1", "sequencer": "0A"},
        },
    }


def test_plain_s3_event_with_url_encoded_key():
    [obj] = s3_objects({"Records": [_s3_record()]})
    assert obj == S3Object("landing", KEY, "v1", "abc", 12, "ObjectCreated:Put", "0A")
    assert obj.version == "v1"


def test_sqs_sns_s3_nesting_is_unwrapped():
    sns_envelope = {"Type": "Notification", "Message": json.dumps({"Records": [_s3_record()]})}
    sqs_event = {"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps(sns_envelope)}]}
    assert [o.key for o in s3_objects(sqs_event)] == [KEY]


def test_sqs_s3_and_sns_s3_are_unwrapped():
    sqs_event = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps({"Records": [_s3_record()]})}]}
    sns_event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps({"Records": [_s3_record()]})}}]}
    assert s3_objects(sqs_event)[0].key == KEY
    assert s3_objects(sns_event)[0].key == KEY


def test_test_event_is_ignored():
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "landing"})
    assert s3_objects({"Records": [{"eventSource": "aws:sqs", "body": body}]}) == []


def test_version_falls_back_to_etag():
    record = _s3_record()
    del record["s3"]["object"]["versionId"]
    assert s3_objects({"Records": [record]})[0].version == "abc"


@pytest.mark.parametrize("body", ["not json", json.dumps({"hello": 1}), json.dumps([1])])
def test_unrecognised_bodies_raise(body):
    with pytest.raises(EventError):
        s3_objects({"Records": [{"eventSource": "aws:sqs", "body": body}]})


def test_real_moto_notification_through_sns_and_sqs(aws):
    """The envelope moto (like AWS) produces for S3 -> SNS -> SQS, with a key needing encoding."""
    s3, sns, sqs = boto3.client("s3"), boto3.client("sns"), boto3.client("sqs")
    s3.create_bucket(Bucket="landing")
    topic = sns.create_topic(Name="t")["TopicArn"]
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    s3.put_bucket_notification_configuration(
        Bucket="landing",
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    s3.put_object(Bucket="landing", Key=KEY, Body=b"a,b\n1,2\n")
    messages = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(s3_objects({"Records": [_sqs(m)]}) for m in messages):
        messages += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    objects = [o for m in messages for o in s3_objects({"Records": [_sqs(m)]})]
    assert [(o.bucket, o.key, o.size) for o in objects] == [("landing", KEY, 8)]
    # The arrival time S3 stamped on the event, to the millisecond (the CDC lake partitions by it).
    assert datetime.fromisoformat(objects[0].event_time).tzinfo is not None


def test_event_time_is_kept_as_sent():
    record = {**_s3_record(), "eventTime": "2026-03-01T23:59:59.123Z"}
    assert s3_objects({"Records": [record]})[0].event_time == "2026-03-01T23:59:59.123Z"
    assert s3_objects({"Records": [_s3_record()]})[0].event_time is None


def _sqs(message: dict) -> dict:
    return {"eventSource": "aws:sqs", "messageId": message["MessageId"], "body": message["Body"]}


# S3 -> EventBridge "Object Created", as the Amazon S3 user guide shows it (EventBridge event
# message structure), and a real CompleteMultipartUpload event of a versioned bucket.
EVENTBRIDGE_PUT = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "111122223333",
    "time": "2021-11-12T00:00:00Z",
    "region": "ca-central-1",
    "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
    "detail": {
        "version": "0",
        "bucket": {"name": "amzn-s3-demo-bucket1"},
        "object": {
            "key": "example-key",
            "size": 5,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "sequencer": "617f08299329d189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    },
}
EVENTBRIDGE_MULTIPART = {
    **EVENTBRIDGE_PUT,
    "id": "c9888434-815d-c6f4-9fc2-4dd7bdeccaaf",
    "time": "2023-08-09T13:09:50Z",
    "region": "eu-west-1",
    "detail": {
        "version": "0",
        "bucket": {"name": "landing"},
        "object": {
            "key": "raw/health check/2023-08-08T14:03:40+01.zip",
            "size": 198524144,
            "etag": "4af981f98d22a0b9979da24b259e5e42-12",
            "version-id": "uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G",
            "sequencer": "0064D3901D00059242",
        },
        "request-id": "XRRTKJXSZQCWNQR1",
        "requester": "528068194338",
        "source-ip-address": "94.224.187.252",
        "reason": "CompleteMultipartUpload",
    },
}


def test_eventbridge_object_created_direct_and_inside_an_sqs_body():
    """These were refused with `EventError: not an S3 notification` (issue 13)."""
    [put] = s3_objects(EVENTBRIDGE_PUT)
    assert put == S3Object(
        "amzn-s3-demo-bucket1",
        "example-key",
        "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        "b1946ac92492d2347c6235b4d2611184",
        5,
        "ObjectCreated:Put",
        "617f08299329d189",
    )
    sqs_event = {"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps(EVENTBRIDGE_MULTIPART)}]}
    [multipart] = s3_objects(sqs_event)
    # EventBridge keys are not URL-encoded: spaces and `+` arrive as they are.
    assert multipart.key == "raw/health check/2023-08-08T14:03:40+01.zip"
    assert (multipart.event_name, multipart.etag, multipart.version) == (
        "ObjectCreated:CompleteMultipartUpload",
        "4af981f98d22a0b9979da24b259e5e42-12",
        "uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G",
    )


def test_eventbridge_events_that_are_not_object_created_keep_their_own_name():
    deleted_detail = {**EVENTBRIDGE_PUT["detail"], "reason": "DeleteObject"}
    deleted = {**EVENTBRIDGE_PUT, "detail-type": "Object Deleted", "detail": deleted_detail}
    tagged = {**EVENTBRIDGE_PUT, "detail-type": "Object Tags Added"}
    assert s3_objects(deleted)[0].event_name == "ObjectRemoved:Delete"
    assert s3_objects(tagged)[0].event_name == "Object Tags Added"
    with pytest.raises(EventError, match="without bucket and object key"):
        s3_objects({**EVENTBRIDGE_PUT, "detail": {"bucket": {"name": "b"}}})


NOT_S3 = [
    {"action": "migrate", "database": "app"},
    {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
    {"detail-type": "Object Created", "source": "aws.s3"},  # no detail to read
    {"hello": 1},
]


@pytest.mark.parametrize(
    "payload",
    [
        EVENTBRIDGE_PUT,
        json.dumps(EVENTBRIDGE_MULTIPART),
        {"Records": [_s3_record()]},
        {"Type": "Notification", "Message": json.dumps({"Records": [_s3_record()]})},
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "landing"},
        *NOT_S3,
    ],
)
def test_the_classifier_agrees_with_the_parser(payload):
    """schema migrations' `is_s3_event` accepted `detail-type` events `s3_objects` could not read."""
    try:
        parsed = True
        s3_objects(payload)
    except EventError:
        parsed = False
    assert is_s3_notification(payload) is parsed


def test_real_moto_eventbridge_delivery_to_sqs(aws):
    """S3 -> EventBridge rule (bucket, key prefix, Object Created) -> SQS, as moto delivers it."""
    s3, events, sqs = boto3.client("s3"), boto3.client("events"), boto3.client("sqs")
    s3.create_bucket(Bucket="landing")
    s3.put_bucket_notification_configuration(
        Bucket="landing", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    queue = sqs.create_queue(QueueName="eb")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["landing"]}, "object": {"key": [{"prefix": "in/"}]}},
    }
    events.put_rule(Name="landing", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="landing", Targets=[{"Id": "q", "Arn": queue_arn}])
    s3.put_object(Bucket="landing", Key="elsewhere/x.csv", Body=b"a\n")
    s3.put_object(Bucket="landing", Key=KEY, Body=b"a,b\n1,2\n")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    objects = [o for m in messages for o in s3_objects({"Records": [_sqs(m)]})]
    # moto's reason is "ObjectCreated" where AWS says "PutObject"; the kind is what consumers read.
    assert [(o.bucket, o.key, o.event_name.split(":")[0]) for o in objects] == [("landing", KEY, "ObjectCreated")]


def test_sqs_batch_reports_only_failed_messages():
    records = [{"messageId": f"m{i}", "body": str(i)} for i in range(4)]

    def process(record):
        if int(record["body"]) % 2:
            raise ValueError("odd")

    assert sqs_batch_response(records, process) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]
    }


def _stream(seq: str, event: str = "INSERT") -> dict:
    return {
        "eventSource": "aws:dynamodb",
        "eventName": event,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        "dynamodb": {
            "SequenceNumber": seq,
            "Keys": {"pk": {"S": "a"}},
            "NewImage": {"pk": {"S": "a"}, "n": {"N": "1.5"}, "tags": {"SS": ["x"]}},
        },
    }


def test_stream_record_is_deserialised():
    record = stream_record(_stream("100"))
    assert record.event_name == "INSERT"
    assert record.keys == {"pk": "a"}
    assert record.new_image == {"pk": "a", "n": 1.5, "tags": {"x"}}
    assert record.old_image is None
    with pytest.raises(EventError):
        stream_record({"eventSource": "aws:sqs"})


# A record as Lambda delivers it from a table keyed by a binary attribute (the shape of AWS's
# example event): binary values are base64 text in Lambda's JSON, at the top level, in sets, and
# nested in maps and lists.
BINARY_STREAM_EVENT = json.loads(
    """
{
  "Records": [
    {
      "eventID": "7de3041dd709b024af6f29e4fa13d34c",
      "eventName": "MODIFY",
      "eventVersion": "1.1",
      "eventSource": "aws:dynamodb",
      "awsRegion": "us-east-1",
      "dynamodb": {
        "ApproximateCreationDateTime": 1479499740,
        "Keys": {"Id": {"B": "AAEC/w=="}},
        "NewImage": {
          "Id": {"B": "AAEC/w=="},
          "Thumbnails": {"BS": ["iVBORw==", "R0lGOA=="]},
          "Meta": {"M": {"Checksum": {"B": "3q2+7w=="}, "Parts": {"L": [{"B": "AQ=="}, {"N": "2"}]}}},
          "Title": {"S": "raw bytes"}
        },
        "OldImage": {"Id": {"B": "AAEC/w=="}, "Title": {"S": "before"}},
        "SequenceNumber": "13021600000000001596893679",
        "SizeBytes": 112,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
      },
      "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Images/stream/2016-11-16T20:42:48.104"
    }
  ]
}
"""
)


def test_stream_record_reads_binary_attributes_of_a_lambda_event():
    (raw,) = BINARY_STREAM_EVENT["Records"]
    record = stream_record(raw)
    assert record.event_name == "MODIFY" and record.sequence_number == "13021600000000001596893679"
    assert record.keys == {"Id": Binary(b"\x00\x01\x02\xff")}
    assert record.new_image == {
        "Id": Binary(b"\x00\x01\x02\xff"),
        "Thumbnails": {Binary(b"\x89PNG"), Binary(b"GIF8")},
        "Meta": {"Checksum": Binary(b"\xde\xad\xbe\xef"), "Parts": [Binary(b"\x01"), 2]},
        "Title": "raw bytes",
    }
    assert record.old_image == {"Id": Binary(b"\x00\x01\x02\xff"), "Title": "before"}


def test_client_image_turns_lambda_base64_into_the_bytes_boto3_sends():
    image = client_image(BINARY_STREAM_EVENT["Records"][0]["dynamodb"]["NewImage"])
    assert image == {
        "Id": {"B": b"\x00\x01\x02\xff"},
        "Thumbnails": {"BS": [b"\x89PNG", b"GIF8"]},
        "Meta": {"M": {"Checksum": {"B": b"\xde\xad\xbe\xef"}, "Parts": {"L": [{"B": b"\x01"}, {"N": "2"}]}}},
        "Title": {"S": "raw bytes"},
    }
    assert client_image(image) == image  # bytes (a GetRecords image) stay as they are
    with pytest.raises(EventError, match="binary attribute 'Id' is not base64"):
        client_image({"Id": {"B": "not base64!"}})
    with pytest.raises(EventError, match="attribute 'Id' is not a DynamoDB attribute value"):
        client_image({"Id": "plain"})


def test_stream_batch_stops_at_first_failure_and_reports_its_sequence():
    seen = []

    def process(record):
        seen.append(record["dynamodb"]["SequenceNumber"])
        if record["dynamodb"]["SequenceNumber"] == "2":
            raise RuntimeError("boom")

    response = stream_batch_response([_stream("1"), _stream("2"), _stream("3")], process)
    assert response == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert seen == ["1", "2"]
